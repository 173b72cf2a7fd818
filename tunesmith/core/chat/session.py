"""ChatSession: one conversation (history, system text, settings) on a shared ChatEngine."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from tunesmith.core.chat.settings import GenerationSettings
from tunesmith.core.chat.stopping import StopWordFilter, locked_streamer
from tunesmith.core.errors import UserError


@dataclass
class AnswerInfo:
    """Facts about the last answer, for the GUI's status line."""

    text: str = ""
    new_tokens: int = 0
    stop_reason: str = ""        # eos | stop_word | max_new_tokens | cancelled | error
    trimmed_turns: int = 0       # oldest exchanges dropped to fit the context
    prompt_tokens: int = 0
    seconds: float = 0.0
    tokens_at_cancel: int | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def drop_oldest_exchange(messages: list[dict]) -> list[dict]:
    """Remove the first user message and the replies that follow it.

    >>> drop_oldest_exchange([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
    ...                       {"role": "user", "content": "c"}])
    [{'role': 'user', 'content': 'c'}]
    """
    rest = list(messages)
    if rest:
        rest.pop(0)
    while rest and rest[0]["role"] != "user":
        rest.pop(0)
    return rest


class ChatSession:
    """A conversation. ``stream(text)`` yields text deltas; ``chat(text)`` returns the whole answer.

    One answer at a time per session; call :meth:`cancel` (from any thread) to stop it early. The
    partial answer stays in the history, as a reader saw it.
    """

    def __init__(self, engine, *, system: str = "", settings: GenerationSettings | None = None,
                 use_adapter: bool = True, template: str | None = None):
        self.engine = engine
        self.system = system
        self.settings = (settings or GenerationSettings()).validated()
        self.use_adapter = use_adapter
        self.template = template
        self.history: list[dict] = []
        self.last = AnswerInfo()
        self._busy = threading.Lock()
        self._cancel = threading.Event()
        self._criteria = None
        self._seed_generator = None
        self._seed = None

    # ---- public ---------------------------------------------------------------------------
    @property
    def template(self) -> str:
        return self._template

    @template.setter
    def template(self, name: str | None) -> None:
        """None or "auto" = the engine's template; other names are checked (close matches listed)."""
        from tunesmith.core.data.templates import AUTO, resolve_template

        if not name or name == AUTO:
            self._template = self.engine.template
        else:
            self._template = resolve_template(name, self.engine.model_path, tokenizer=self.engine.tokenizer)

    def reset(self) -> None:
        """Forget the conversation (and restart the sampler from the seed)."""
        self.cancel()
        self.history = []
        self._seed_generator = None
        self._seed = None
        self.last = AnswerInfo()

    def cancel(self) -> None:
        criteria = self._criteria
        if criteria is not None and self._busy.locked():
            self.last.tokens_at_cancel = criteria.generated
        self._cancel.set()

    @property
    def busy(self) -> bool:
        return self._busy.locked()

    def messages(self) -> list[dict]:
        """The conversation as chat messages, system text first."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [dict(m) for m in self.history]

    def stream(self, user_text: str):
        """Yield the answer as it is written (a generator of text deltas)."""
        prompt = self._begin(user_text)
        stop_words = self.engine.stop_words(self.template, self.settings.stop_words)
        streamer = locked_streamer(self.engine.tokenizer, self.engine.tokenizer_lock)
        box: dict = {}

        def work():
            try:
                box["result"] = self._generate(prompt, streamer)
            except BaseException as exc:  # handed to the consumer below
                box["error"] = exc
                streamer.end()

        thread = threading.Thread(target=work, name="tunesmith-chat", daemon=True)
        parts: list[str] = []
        started = time.monotonic()
        try:
            thread.start()
            text_filter = StopWordFilter(stop_words)
            for chunk in _drain(streamer, thread):
                piece = text_filter.feed(chunk)
                if piece:
                    parts.append(piece)
                    yield piece
                if text_filter.stopped:
                    box["stop_word"] = True
                    self._cancel.set()  # the criteria usually saw it first; make sure generation ends
                    break
            rest = text_filter.flush()
            if rest:
                parts.append(rest)
                yield rest
        finally:
            if thread.is_alive():
                self._cancel.set()
                thread.join()
            self._finish(user_text, "".join(parts), box.get("result"), box.get("error"), started,
                         reason="stop_word" if box.get("stop_word") else None)
        if "error" in box:
            raise box["error"]

    def chat(self, user_text: str) -> str:
        """The whole answer at once (no streamer)."""
        prompt = self._begin(user_text)
        started, result, error, text = time.monotonic(), None, None, ""
        try:
            result = self._generate(prompt, None)
            stop_words = self.engine.stop_words(self.template, self.settings.stop_words)
            text = self.engine.cut_at_stop(self.engine.decode(result[0]), stop_words)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._finish(user_text, text, result, error, started)
        return text

    # ---- internals ------------------------------------------------------------------------
    def _begin(self, user_text: str) -> list[int]:
        if not isinstance(user_text, str) or not user_text.strip():
            raise UserError("the message is empty.", "Type a question first.")
        if not self._busy.acquire(blocking=False):
            raise UserError("this conversation is still answering.", "Wait for the answer or press Stop first.")
        try:
            self.settings.validated()
            self._cancel = threading.Event()
            self.last = AnswerInfo()
            return self._fit_prompt(user_text)
        except BaseException:
            self._busy.release()
            raise

    def _fit_prompt(self, user_text: str) -> list[int]:
        """Prompt ids of history + the new message, dropping the oldest exchanges to fit the context."""
        limit, reserve = self.engine.context_limit, self.settings.max_new_tokens
        budget = limit - reserve
        if budget < 8:
            raise UserError(f"max_new_tokens {reserve} leaves no room for the question in the model's "
                            f"{limit}-token context.", f"Lower max_new_tokens below {limit - 64}.")
        history = self.history + [{"role": "user", "content": user_text}]
        trimmed = 0
        while True:
            system = [{"role": "system", "content": self.system}] if self.system else []
            ids = self.engine.encode(self.template, system + history)
            if len(ids) <= budget:
                break
            if len(history) <= 1:
                raise UserError(f"the message needs {len(ids)} tokens with the template and system text, but the "
                                f"model's {limit}-token context leaves {budget} after reserving max_new_tokens "
                                f"{reserve}.", "Shorten the message or the system text, or lower max_new_tokens.")
            history = drop_oldest_exchange(history)
            trimmed += 1
        self.history = history[:-1]
        self.last.trimmed_turns = trimmed
        self.last.prompt_tokens = len(ids)
        return ids

    def _generate(self, prompt: list[int], streamer):
        import torch

        seed = self.settings.seed
        if not self.settings.greedy and (self._seed_generator is None or (seed is not None and seed != self._seed)):
            # one generator per conversation, (re)started when the seed changes: answers are
            # reproducible whatever other sessions sample meanwhile
            self._seed_generator = torch.Generator(device=self.engine.device)
            if seed is None:
                self._seed_generator.seed()
            else:
                self._seed_generator.manual_seed(int(seed))
            self._seed = seed

        def remember(criteria):
            self._criteria = criteria

        return self.engine.generate(prompt, self.settings, template=self.template, use_adapter=self.use_adapter,
                                    cancel=self._cancel, streamer=streamer, seed_generator=self._seed_generator,
                                    on_start=remember)

    def _finish(self, user_text, text, result, error, started, reason: str | None = None) -> None:
        try:
            info = self.last
            info.text, info.seconds = text, time.monotonic() - started
            if result is not None:
                info.new_tokens, info.stop_reason = len(result[0]), reason or result[1]
            elif error is not None:
                info.stop_reason = "error"
            if error is None or result is not None:
                self.history = self.history + [{"role": "user", "content": user_text},
                                               {"role": "assistant", "content": text}]
        finally:
            self._criteria = None
            self._busy.release()


def _drain(streamer, thread):
    """Iterate a TextIteratorStreamer, noticing a generation thread that died without ending it."""
    while True:
        try:
            yield next(streamer)
        except StopIteration:
            return
        except queue.Empty:
            if not thread.is_alive():
                return
