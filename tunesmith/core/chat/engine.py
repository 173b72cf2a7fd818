"""ChatEngine: one loaded model (optionally with a LoRA adapter) shared by many conversations.

The engine holds the weights, tokenizer and prompt template; each :class:`~tunesmith.core.chat.session.ChatSession`
holds its own history and settings. Sessions may generate at the same time from different threads
(generate() keeps all per-call state local). The only shared switch is the adapter: a session asking
for the base model's answer (A/B comparison) waits until no session is generating with the adapter
on, then PEFT's ``disable_adapter()`` context is held until the last base-model answer ends.
"""

from __future__ import annotations

import copy
import threading
from contextlib import contextmanager

from tunesmith.core.chat.settings import GenerationSettings
from tunesmith.core.chat.stopping import earliest_stop, make_stopping_criteria, sampling_processors
from tunesmith.core.chat.turns import Turns
from tunesmith.core.errors import UserError


class _AdapterGate:
    """Lets generations with the same adapter state run together; switches state only when idle.

    Waiters for the other state block new entrants of the current one, so neither side starves.
    """

    def __init__(self, model, enabled: bool):
        self.model = model
        self.enabled = enabled
        self.cond = threading.Condition()
        self.active = 0
        self.waiting = {True: 0, False: 0}
        self._disabled_ctx = None

    @contextmanager
    def mode(self, want: bool):
        if not self.enabled:
            yield
            return
        with self.cond:
            self.waiting[want] += 1
            while not (self.active == 0 or (self._state() == want and self.waiting[not want] == 0)):
                self.cond.wait()
            self.waiting[want] -= 1
            if self.active == 0 and self._state() != want:
                self._switch(want)
            self.active += 1
        try:
            yield
        finally:
            with self.cond:
                self.active -= 1
                self.cond.notify_all()

    def _state(self) -> bool:
        return self._disabled_ctx is None

    def _switch(self, want: bool) -> None:
        if want:
            ctx, self._disabled_ctx = self._disabled_ctx, None
            ctx.__exit__(None, None, None)
        else:
            self._disabled_ctx = self.model.disable_adapter()
            self._disabled_ctx.__enter__()


class ChatEngine:
    """A loaded chat model. Use :meth:`load` to build one, :meth:`new_session` per conversation.

    The engine also owns a default session, so simple callers can use ``engine.stream(text)``,
    ``engine.chat(text)``, ``engine.cancel()``, ``engine.reset()`` and ``engine.use_adapter(False)``.
    """

    def __init__(self, model, tokenizer, *, template: str | None = None, system: str = "",
                 settings: GenerationSettings | None = None, max_context: int | None = None, label: str = "",
                 model_path: str = ""):
        from tunesmith.core.data.templates import resolve_template

        self.model = model
        self.tokenizer = tokenizer
        self.label = label or model_path
        self.model_path = model_path
        self.has_adapter = hasattr(model, "peft_config") and hasattr(model, "disable_adapter")
        self._hf_model = model.get_base_model() if self.has_adapter else model
        self.template = resolve_template(template or "auto", model_path, tokenizer=tokenizer)
        self.system = system or ""
        self.settings = (settings or GenerationSettings()).validated()
        self.context_limit = max_context or self._model_context()
        self.tokenizer_lock = threading.Lock()
        self._gate = _AdapterGate(model, self.has_adapter)
        self._turns = Turns()  # conversations generating at once take one step each in turn
        self._session = None

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def load(cls, model: str, *, adapter: str | None = None, template: str | None = None, system: str | None = None,
             system_template: str | None = None, bits: int | None = None, dtype: str = "auto", device: str = "auto",
             settings: GenerationSettings | None = None, max_context: int | None = None,
             trust_remote_code: bool = False) -> "ChatEngine":
        """Load MODEL (folder, hub id, ``embedded:...``, run dir, checkpoint or exported adapter folder).

        A run/checkpoint brings its base model, adapter, template and system text; ``template``,
        ``system``/``system_template`` override them.
        """
        from tunesmith.core.chat.loading import load_model, resolve_spec, system_text
        from tunesmith.core.data.templates import resolve_template

        spec = resolve_spec(model, adapter)
        chosen_system = system_text(system, system_template)
        wanted_template = template or spec.template or "auto"
        resolve_template(wanted_template, spec.base)  # unknown names fail before the slow load
        hf_model, tokenizer, _ = load_model(spec, bits=bits, dtype=dtype, device=device,
                                            trust_remote_code=trust_remote_code)
        return cls(hf_model, tokenizer, template=wanted_template, model_path=spec.base, settings=settings,
                   system=spec.system if chosen_system is None else chosen_system, max_context=max_context,
                   label=spec.label)

    def new_session(self, *, system: str | None = None, settings: GenerationSettings | None = None,
                    use_adapter: bool = True, template: str | None = None):
        """A fresh conversation sharing this engine's model."""
        from tunesmith.core.chat.session import ChatSession

        return ChatSession(self, system=self.system if system is None else system,
                           settings=copy.deepcopy(settings or self.settings), use_adapter=use_adapter,
                           template=template)

    # ---- default session ------------------------------------------------------------------
    @property
    def session(self):
        if self._session is None:
            self._session = self.new_session()
        return self._session

    def stream(self, user_text: str):
        return self.session.stream(user_text)

    def chat(self, user_text: str) -> str:
        return self.session.chat(user_text)

    def cancel(self) -> None:
        self.session.cancel()

    def reset(self) -> None:
        self.session.reset()

    def use_adapter(self, enabled: bool) -> None:
        if not enabled and not self.has_adapter:
            raise UserError("no adapter is loaded, so there is nothing to switch off.",
                            "Load the model with an adapter (--adapter or a LoRA run) for A/B answers.")
        self.session.use_adapter = enabled

    def compare(self, user_text: str, *, history: list | None = None, system: str | None = None,
                settings: GenerationSettings | None = None) -> dict:
        """A/B: the same question answered with the adapter on and off -> {"adapter": ..., "base": ...}."""
        if not self.has_adapter:
            raise UserError("A/B comparison needs a model loaded with an adapter.",
                            "Load a LoRA run or pass --adapter.")
        answers = {}
        for key, enabled in (("adapter", True), ("base", False)):
            session = self.new_session(system=system, settings=settings, use_adapter=enabled)
            session.history = list(history or [])
            answers[key] = session.chat(user_text)
        return answers

    # ---- used by sessions -----------------------------------------------------------------
    def _model_context(self) -> int:
        config = getattr(self._hf_model, "config", None)
        limits = [getattr(config, "max_position_embeddings", None),
                  getattr(self.tokenizer, "model_max_length", None)]
        limits = [int(n) for n in limits if isinstance(n, (int, float)) and 0 < n < 10_000_000]
        return min(limits) if limits else 2048

    @property
    def device(self):
        return getattr(self._hf_model, "device", None) or next(self.model.parameters()).device

    def stop_words(self, template: str, extra=()) -> list[str]:
        from tunesmith.core.data.templates import stop_words_for

        words = list(stop_words_for(template, self.tokenizer))
        return words + [w for w in extra if w and w not in words]

    def encode(self, template: str, messages: list[dict]) -> list[int]:
        from tunesmith.core.data.templates import build_chat_prompt

        text = build_chat_prompt(template, self.tokenizer, messages, add_generation_prompt=True)
        with self.tokenizer_lock:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids) -> str:
        with self.tokenizer_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

    def eos_ids(self, stop_words) -> list[int]:
        from tunesmith.core.export.extras import single_token_ids

        eos = getattr(self._hf_model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        ids = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        with self.tokenizer_lock:
            extra = single_token_ids(stop_words, self.tokenizer)
        return ids + [i for i in extra if i not in ids]

    def generate(self, prompt_ids: list[int], settings: GenerationSettings, *, template: str, use_adapter: bool,
                 cancel: threading.Event, streamer=None, seed_generator=None, on_start=None):
        """Run generate() once; returns (new token ids, stop reason, stopping criteria)."""
        import torch
        from transformers import StoppingCriteriaList

        stop_words = self.stop_words(template, settings.stop_words)
        eos = self.eos_ids(stop_words)
        criteria = make_stopping_criteria(self.tokenizer, len(prompt_ids), stop_words, cancel, self.tokenizer_lock,
                                          between_steps=self._turns.pass_on)
        if on_start is not None:
            on_start(criteria)
        gen = copy.deepcopy(self._hf_model.generation_config)
        gen.update(do_sample=False, temperature=None, top_k=None, top_p=None, num_beams=1, max_length=None,
                   max_new_tokens=settings.max_new_tokens, eos_token_id=eos,
                   pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0],
                   repetition_penalty=settings.repetition_penalty if settings.repetition_penalty != 1 else None)
        processors = None if settings.greedy else sampling_processors(settings, seed_generator)
        input_ids = torch.tensor([prompt_ids], device=self.device)
        with self._gate.mode(use_adapter and self.has_adapter), self._turns.held(), torch.inference_mode():
            out = self._hf_model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                          generation_config=gen, logits_processor=processors,
                                          stopping_criteria=StoppingCriteriaList([criteria]), streamer=streamer)
        new = out[0, len(prompt_ids):].tolist()  # a batch of one: no padding after EOS
        reason = criteria.reason or ("eos" if new and new[-1] in eos else
                                     "max_new_tokens" if len(new) >= settings.max_new_tokens else "eos")
        return new, reason, criteria

    @staticmethod
    def cut_at_stop(text: str, stop_words) -> str:
        cut = earliest_stop(text, stop_words)
        return text[:cut] if cut >= 0 else text
