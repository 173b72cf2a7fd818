"""Sampling settings of one conversation, checked with messages a user can act on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tunesmith.core.errors import UserError


@dataclass
class GenerationSettings:
    """How answers are sampled (defaults follow ``xtuner chat``, except a shorter answer limit)."""

    max_new_tokens: int = field(default=512, metadata={"help": "Longest answer, in tokens."})
    temperature: float = field(default=0.1, metadata={"help": "Randomness; 0 = always the most likely token (greedy)."})
    top_k: int = field(default=40, metadata={"help": "Sample only among the k most likely tokens (0 = no limit)."})
    top_p: float = field(default=0.75, metadata={"help": "Sample only among the most likely tokens whose "
                                                          "probabilities add up to p (1 = no limit)."})
    repetition_penalty: float = field(default=1.0, metadata={"help": "Above 1 discourages repeating tokens."})
    seed: int | None = field(default=0, metadata={"help": "Seed of this conversation's sampler (None = random)."})
    stop_words: list = field(default_factory=list, metadata={"help": "Extra strings that end an answer "
                                                                      "(the template's own are always used)."})

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def replace(self, **changes) -> "GenerationSettings":
        """A validated copy with some fields changed; unknown names are refused.

        >>> GenerationSettings().replace(temperature=0).greedy
        True
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            from tunesmith.core.errors import close_matches

            raise UserError(f"unknown chat setting '{unknown[0]}'.", close_matches(unknown[0], names))
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> "GenerationSettings":
        """Return self, or raise a UserError naming the first value out of range."""
        checks = [
            ("max_new_tokens", isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1,
             "must be a whole number >= 1", "Typical: 256-2048."),
            ("temperature", _num(self.temperature) and 0 <= self.temperature <= 10,
             "must be between 0 and 10", "0 = greedy; 0.1-1.0 is usual."),
            ("top_k", isinstance(self.top_k, int) and self.top_k >= 0, "must be a whole number >= 0",
             "0 turns it off; 40 is usual."),
            ("top_p", _num(self.top_p) and 0 < self.top_p <= 1, "must be in (0, 1]", "1 turns it off; 0.75-0.95 is usual."),
            ("repetition_penalty", _num(self.repetition_penalty) and 0 < self.repetition_penalty <= 10,
             "must be between 0 (excluded) and 10", "1.0 = no penalty; 1.1 is a mild one."),
            ("seed", self.seed is None or (isinstance(self.seed, int) and self.seed >= 0),
             "must be a whole number >= 0", "Any non-negative number, e.g. 0."),
            ("stop_words", isinstance(self.stop_words, (list, tuple)) and all(isinstance(w, str) and w
                                                                                for w in self.stop_words),
             "must be a list of non-empty strings", "Example: ['Human:', '###']."),
        ]
        for name, ok, problem, fix in checks:
            if not ok:
                raise UserError(f"{name} {problem}, got {getattr(self, name)!r}.", fix, field=name)
        return self


def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
