"""What the server generates with: the chat engine (base, adapter, merged, run) or a GGUF via llama-cpp-python.

Both take the same normalised request (:class:`Params`) and fill an :class:`Outcome` (finish reason
and token counts) while they yield text, so the HTTP layer does not care which one it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.core.chat.session import ChatSession
from tunesmith.core.errors import UserError
from tunesmith.core.refs import is_embedded


@dataclass
class Params:
    """Sampling asked for by one request; None = the server's default (its GenerationSettings)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: list = field(default_factory=list)


@dataclass
class Outcome:
    finish_reason: str = "stop"   # "stop" | "length" (OpenAI's names)
    prompt_tokens: int = 0
    completion_tokens: int = 0


FINISH = {"max_new_tokens": "length"}  # eos, stop_word, cancelled -> "stop"


class HFBackend:
    """A :class:`tunesmith.core.chat.ChatEngine`; each request is a fresh ChatSession, so concurrent requests take
    token-by-token turns exactly as the studio's chat sessions do (core/chat/turns.py)."""

    kind = "transformers"

    def __init__(self, engine, model_id: str):
        self.engine = engine
        self.model_id = model_id

    @classmethod
    def load(cls, src: str, *, model_id: str, template: str | None = None, system: str | None = None,
             settings=None, dtype: str = "auto", device: str = "auto", trust_remote_code: bool = False):
        from tunesmith.core.chat import ChatEngine

        engine = ChatEngine.load(src, template=template, system=system, settings=settings, dtype=dtype,
                                 device=device, trust_remote_code=trust_remote_code)
        return cls(engine, model_id)

    def _settings(self, params: Params):
        changes = {"max_new_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p,
                   "top_k": params.top_k, "repetition_penalty": params.repetition_penalty}
        changes = {k: v for k, v in changes.items() if v is not None}
        if params.seed is not None:
            changes["seed"] = params.seed
        changes["stop_words"] = list(self.engine.settings.stop_words) + list(params.stop)
        return self.engine.settings.replace(**changes)

    def _session(self, params: Params, system: str | None, history: list[dict]):
        session = self.engine.new_session(system=system, settings=self._settings(params))
        session.history = history
        return session

    def chat(self, messages: list[dict], params: Params, outcome: Outcome, *, stream: bool):
        system, history, question = split_messages(messages)
        session = self._session(params, system, history)
        return self._run(session, question, outcome, stream)

    def complete(self, prompt: str, params: Params, outcome: Outcome, *, stream: bool):
        session = PromptSession(self.engine, system="", settings=self._settings(params))
        return self._run(session, prompt, outcome, stream)

    @staticmethod
    def _run(session, text: str, outcome: Outcome, stream: bool):
        def finish():
            info = session.last
            outcome.finish_reason = FINISH.get(info.stop_reason, "stop")
            outcome.prompt_tokens, outcome.completion_tokens = info.prompt_tokens, info.new_tokens

        if not stream:
            answer = session.chat(text)
            finish()
            return answer

        def pieces():
            try:
                yield from session.stream(text)
            finally:
                session.cancel()  # the client went away mid-answer: stop generating for it
            finish()

        return pieces()


class PromptSession(ChatSession):
    """A raw completion: the prompt is tokenised as given (no template), stop words are the request's and
    the tokenizer's EOS; everything else (turns, cancel, stop filter, seeds) is ChatSession's."""

    @property
    def template(self) -> str:
        return ""

    @template.setter
    def template(self, name) -> None:
        pass

    def _fit_prompt(self, user_text: str) -> list[int]:
        with self.engine.tokenizer_lock:
            ids = list(self.engine.tokenizer(user_text)["input_ids"])
        budget = self.engine.context_limit - self.settings.max_new_tokens
        if len(ids) > budget:
            raise UserError(f"the prompt has {len(ids)} tokens but the model's {self.engine.context_limit}-token "
                            f"context leaves {budget} after max_tokens {self.settings.max_new_tokens}.",
                            "Shorten the prompt or lower max_tokens.", field="prompt")
        self.last.prompt_tokens = len(ids)
        return ids


def split_messages(messages: list[dict]) -> tuple[str | None, list[dict], str]:
    """OpenAI messages -> (system text or None, earlier turns, the last user message).

    >>> split_messages([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    ('Be brief.', [], 'Hi')
    """
    systems = []
    rest = list(messages)
    while rest and rest[0]["role"] in ("system", "developer"):
        systems.append(rest.pop(0)["content"])
    if not rest or rest[-1]["role"] != "user":
        raise UserError("the last message must come from the user.", "End messages with a {'role': 'user', ...} "
                        "message.", field="messages")
    for m in rest:
        if m["role"] not in ("user", "assistant"):
            raise UserError(f"a '{m['role']}' message after the conversation started is not supported.",
                            "Put system messages first; tool messages are not supported.", field="messages")
    history = [{"role": m["role"], "content": m["content"]} for m in rest[:-1]]
    return ("\n\n".join(systems) if systems else None), history, rest[-1]["content"]


class GGUFBackend:
    """A GGUF file through llama-cpp-python, prompts laid out by the file's own chat template.

    One llama.cpp context holds one KV cache, so requests take whole turns (first come, first served)
    instead of token-by-token turns: interleaving would re-read every prompt at each switch.
    """

    kind = "llama.cpp"

    def __init__(self, llm, model_id: str, *, defaults=None, system: str = ""):
        from tunesmith.core.chat.settings import GenerationSettings
        from tunesmith.core.chat.turns import Turns

        self.llm = llm
        self.model_id = model_id
        self.defaults = (defaults or GenerationSettings()).validated()
        self.system = system or ""
        self.turns = Turns()
        meta = getattr(llm, "metadata", {}) or {}
        self.chat_template = meta.get("tokenizer.chat_template")
        self.add_bos = str(meta.get("tokenizer.ggml.add_bos_token", "false")).lower() == "true"
        self.tokens = {"bos_token": _token_text(llm, meta, "bos"), "eos_token": _token_text(llm, meta, "eos")}

    @classmethod
    def load(cls, path: str, *, model_id: str, settings=None, system: str | None = None, n_ctx: int = 4096,
             template: str | None = None):
        llama_cpp = require_llama_cpp("serve a GGUF file")
        if template and template not in ("auto", "chat_template"):
            raise UserError(f"a GGUF file is served with the chat template stored in it, not '{template}'.",
                            "Leave --prompt-template out, or serve the merged Hugging Face folder instead.")
        if not Path(path).is_file():
            raise UserError(f"GGUF file {path} does not exist.", "Give the .gguf file written by `convert gguf`.")
        try:
            llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"llama.cpp cannot load {path}: {exc}", "Check it is a complete GGUF model file.") from None
        return cls(llm, model_id, defaults=settings, system=system or "")

    def _kwargs(self, params: Params) -> dict:
        d = self.defaults
        temperature = d.temperature if params.temperature is None else params.temperature
        return dict(max_tokens=params.max_tokens or d.max_new_tokens, temperature=temperature,
                    top_p=d.top_p if params.top_p is None else params.top_p,
                    top_k=d.top_k if params.top_k is None else params.top_k,
                    repeat_penalty=d.repetition_penalty if params.repetition_penalty is None else params.repetition_penalty,
                    seed=(d.seed if d.seed is not None else -1) if params.seed is None else params.seed,
                    stop=list(d.stop_words) + list(params.stop) or None)

    def render(self, messages: list[dict]) -> str:
        """The prompt text of ``messages`` under the GGUF's chat template (as llama.cpp tools lay it out)."""
        if not self.chat_template:
            raise UserError("this GGUF file has no chat template.", "Use /v1/completions with a prompt you lay out "
                            "yourself, or export the GGUF again with `convert gguf` (it stores the run's template).")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def raise_exception(message):
            raise UserError(f"the chat template refused the messages: {message}", "Check the roles' order.")

        return env.from_string(self.chat_template).render(messages=messages, add_generation_prompt=True,
                                                          raise_exception=raise_exception, **self.tokens)

    def chat(self, messages: list[dict], params: Params, outcome: Outcome, *, stream: bool):
        system, history, question = split_messages(messages)
        system = self.system if system is None else system
        full = ([{"role": "system", "content": system}] if system else []) + history + [
            {"role": "user", "content": question}]
        ids = self.llm.tokenize(self.render(full).encode("utf-8"), add_bos=False, special=True)
        bos = self.llm.token_bos()
        if self.add_bos and bos >= 0 and (not ids or ids[0] != bos):  # as llama.cpp's own chat does
            ids = [bos] + ids
        return self._generate(ids, params, outcome, stream)

    def complete(self, prompt: str, params: Params, outcome: Outcome, *, stream: bool):
        ids = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        return self._generate(ids, params, outcome, stream)

    def _generate(self, ids: list[int], params: Params, outcome: Outcome, stream: bool):
        kwargs = self._kwargs(params)
        limit = self.llm.n_ctx() - kwargs["max_tokens"]
        if len(ids) > limit:
            raise UserError(f"the prompt has {len(ids)} tokens but the {self.llm.n_ctx()}-token context leaves "
                            f"{limit} after max_tokens {kwargs['max_tokens']}.", "Shorten the messages or lower "
                            "max_tokens.", field="messages")
        outcome.prompt_tokens = len(ids)

        def run():
            with self.turns.held():
                self.llm.reset()
                pieces = []
                for chunk in self.llm.create_completion(prompt=ids, stream=True, **kwargs):
                    choice = chunk["choices"][0]
                    if choice.get("finish_reason"):
                        outcome.finish_reason = "length" if choice["finish_reason"] == "length" else "stop"
                    if choice.get("text"):
                        outcome.completion_tokens += 1
                        pieces.append(choice["text"])
                        yield choice["text"]

        if stream:
            return run()
        return "".join(run())


def _token_text(llm, meta: dict, which: str) -> str:
    try:
        token_id = int(meta.get(f"tokenizer.ggml.{which}_token_id", -1))
        if token_id < 0:
            return ""
        return llm.detokenize([token_id], special=True).decode("utf-8", errors="replace")
    except Exception:  # an odd vocabulary: templates that use the token text then see ""
        return ""


def require_llama_cpp(what: str):
    try:
        import llama_cpp
    except ImportError:
        raise UserError(f"llama-cpp-python is needed to {what}, and it is not installed.",
                        "pip install llama-cpp-python (it compiles llama.cpp; a few minutes), or use the Hugging "
                        "Face folder instead.") from None
    return llama_cpp


def load_backend(src: str, *, model_id: str | None = None, template: str | None = None, system: str | None = None,
                 settings=None, dtype: str = "auto", device: str = "auto", trust_remote_code: bool = False):
    """A backend for SRC: a .gguf file, or anything ChatEngine.load takes (model, merged folder, run, adapter)."""
    name = model_id or default_model_id(src)
    if str(src).lower().endswith(".gguf"):
        return GGUFBackend.load(str(Path(src).expanduser()), model_id=name, settings=settings, system=system,
                                template=template)
    return HFBackend.load(src, model_id=name, template=template, system=system, settings=settings, dtype=dtype,
                          device=device, trust_remote_code=trust_remote_code)


def default_model_id(src: str) -> str:
    """The name clients pass as ``model``: the folder or file name.

    >>> default_model_id("work_dirs/my_run/"), default_model_id("out/model-q8_0.gguf")
    ('my_run', 'model-q8_0')
    >>> default_model_id("embedded:SmolLM2-135M-Instruct")
    'SmolLM2-135M-Instruct'
    """
    text = str(src).rstrip("/\\")
    if is_embedded(text):
        return text.split(":", 1)[1]
    name = Path(text).name
    return name[:-5] if name.lower().endswith(".gguf") else name

