"""Ending an answer: cancel events, stop words (token level and in the text stream), seeded sampling.

transformers' generate() uses the global torch RNG when sampling, which threads share; a conversation
that must be reproducible while others stream therefore samples with its own ``torch.Generator``
(:class:`SeededSampler`, placed after the library's own temperature/top-k/top-p warpers).
"""

from __future__ import annotations

import threading


def earliest_stop(text: str, stop_words) -> int:
    """Index where the first stop word starts in ``text`` (-1 when none occurs).

    >>> earliest_stop("Sure.<|im_end|>junk", ["<|im_end|>", "junk"])
    5
    """
    hits = [i for i in (text.find(w) for w in stop_words if w) if i >= 0]
    return min(hits) if hits else -1


class StopWordFilter:
    """Pass streamed text through, holding back what could be the start of a stop word.

    >>> f = StopWordFilter(["<end>"])
    >>> f.feed("Hello <e"), f.feed("nd> more"), f.stopped
    ('Hello ', '', True)
    >>> g = StopWordFilter(["<end>"]); g.feed("a <e"), g.flush()
    ('a ', '<e')
    """

    def __init__(self, stop_words):
        self.stop_words = [w for w in stop_words if w]
        self.pending = ""
        self.stopped = False

    def feed(self, chunk: str) -> str:
        if self.stopped:
            return ""
        text = self.pending + chunk
        cut = earliest_stop(text, self.stop_words)
        if cut >= 0:
            self.pending, self.stopped = "", True
            return text[:cut]
        hold = self._held_suffix(text)
        self.pending = text[len(text) - hold:] if hold else ""
        return text[:len(text) - hold]

    def flush(self) -> str:
        rest, self.pending = ("" if self.stopped else self.pending), ""
        return rest

    def _held_suffix(self, text: str) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of a stop word."""
        best = 0
        for word in self.stop_words:
            for n in range(min(len(word) - 1, len(text)), best, -1):
                if text.endswith(word[:n]):
                    best = n
                    break
        return best


def make_stopping_criteria(tokenizer, prompt_len: int, stop_words, cancel: threading.Event | None = None,
                           tokenizer_lock=None, between_steps=None):
    """A StoppingCriteria that ends generation on cancel or once a stop word appears in the answer.

    The one stop-word mechanism of chat, serve and the trainer's sample answers. It works on a batch
    (left-padded prompts of ``prompt_len`` tokens): each row ends when its own answer reaches a stop word;
    ``reason`` says why the last one ended ("stop_word", "cancelled"). It is called once per generated
    token, so it also calls ``between_steps()`` (if given) there: the point where a generation hands its
    turn to the others (see :mod:`tunesmith.core.chat.turns`).
    """
    import contextlib

    import torch
    from transformers import StoppingCriteria

    stop_words = [w for w in stop_words if w]
    longest = max((len(w) for w in stop_words), default=0)
    lock = tokenizer_lock if tokenizer_lock is not None else contextlib.nullcontext()

    class _Stop(StoppingCriteria):
        def __init__(self):
            self.generated = 0
            self.reason = ""

        def __call__(self, input_ids, scores, **kwargs):
            self.generated = input_ids.shape[1] - prompt_len
            rows = input_ids.shape[0]
            if cancel is not None and cancel.is_set():
                self.reason = self.reason or "cancelled"
                done = [True] * rows
            elif stop_words:
                tails = input_ids[:, max(prompt_len, input_ids.shape[1] - longest - 4):]
                with lock:
                    texts = tokenizer.batch_decode(tails, skip_special_tokens=False)
                done = [earliest_stop(text, stop_words) >= 0 for text in texts]
                if any(done):
                    self.reason = "stop_word"
            else:
                done = [False] * rows
            if between_steps is not None and not all(done):
                between_steps()
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return _Stop()


def make_sampler(seed_generator):
    """A LogitsProcessor that samples one token with ``seed_generator`` and masks all the others."""
    import torch
    from transformers import LogitsProcessor

    class SeededSampler(LogitsProcessor):
        def __call__(self, input_ids, scores):
            probs = torch.softmax(scores.float(), dim=-1)
            chosen = torch.multinomial(probs, 1, generator=seed_generator)
            masked = torch.full_like(scores, float("-inf"))
            return masked.scatter_(1, chosen, 0.0)

    return SeededSampler()


def sampling_processors(settings, seed_generator):
    """temperature / top-k / top-p warpers (transformers' own) followed by the seeded sampler."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    processors = LogitsProcessorList([TemperatureLogitsWarper(float(settings.temperature))])
    if settings.top_k and settings.top_k > 0:
        processors.append(TopKLogitsWarper(int(settings.top_k)))
    if settings.top_p < 1:
        processors.append(TopPLogitsWarper(float(settings.top_p)))
    processors.append(make_sampler(seed_generator))
    return processors


def locked_streamer(tokenizer, lock, timeout: float = 0.2):
    """TextIteratorStreamer whose decoding shares the engine's tokenizer lock (Rust tokenizers are not
    safe to mutate while another thread uses them)."""
    from transformers import TextIteratorStreamer

    class _LockedStreamer(TextIteratorStreamer):
        def put(self, value):
            with lock:
                super().put(value)

        def end(self):
            with lock:
                super().end()

    return _LockedStreamer(tokenizer, skip_prompt=True, timeout=timeout, skip_special_tokens=True)
