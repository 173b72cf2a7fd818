"""Chat tab: load the base model, a run/checkpoint adapter or a merged folder; stream answers;
Stop; Clear; side-by-side A/B (adapter on vs off) answering the same prompt.

Loaded engines are shared by every browser session (the weights are loaded once); each session
keeps its own :class:`tunesmith.core.chat.ChatSession` pair in a ``gr.State``, so histories never mix.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.app import commands
from tunesmith.app.callbacks.common import check_source, import_transformers_once, lang_of
from tunesmith.app.locales import MESSAGES, text
from tunesmith.app.registry import Update, ok_html
from tunesmith.app.render_train import run_choice
from tunesmith.app.settings import AppSettings
from tunesmith.core.errors import UserError

SOURCES = ("base", "run", "merged")
STATE = "chat/state"
MAX_ENGINES = 2
# Each streamed update costs the server and the browser a re-render of the conversation; one per token
# made 8 sessions streaming at once starve every other request. So the app sends about ten updates a
# second in all, shared by the answers streaming at the moment (alone: ten a second, still reads as
# live), and never fewer than two a second per answer.
STREAM_EVERY_S = 0.1
STREAM_EVERY_MAX_S = 0.5
_STREAMING = [0]
_STREAMING_LOCK = threading.Lock()

_ENGINES: "OrderedDict[tuple, object]" = OrderedDict()
_ENGINES_LOCK = threading.Lock()
# One load at a time: sessions that press Load together would otherwise each load the same weights,
# and the first imports of transformers are not thread-safe (its lazy module raises ImportError).
_LOADING_LOCK = threading.Lock()


@dataclass
class ChatState:
    """One browser session's conversation(s) on a shared engine."""

    key: tuple
    label: str
    tuned: object                 # ChatSession with the adapter on (or the only model)
    base: object | None = None    # ChatSession with the adapter off (A/B), when an adapter is loaded
    extra: dict = field(default_factory=dict)


def engine_for(model: str, adapter: str | None, trust_remote_code: bool = False):
    """A loaded ChatEngine, shared and cached by (model, adapter); at most MAX_ENGINES stay loaded."""
    import_transformers_once()
    from tunesmith.core.chat import ChatEngine

    key = (model, adapter or "", bool(trust_remote_code))

    def cached():
        with _ENGINES_LOCK:
            if key in _ENGINES:
                _ENGINES.move_to_end(key)
                return _ENGINES[key]
        return None

    engine = cached()
    if engine is not None:
        return key, engine
    with _LOADING_LOCK:
        engine = cached()  # loaded by the session that held the lock before us
        if engine is None:
            engine = ChatEngine.load(model, adapter=adapter, trust_remote_code=trust_remote_code)
            with _ENGINES_LOCK:
                _ENGINES[key] = engine
                while len(_ENGINES) > MAX_ENGINES:
                    _ENGINES.popitem(last=False)  # sessions still holding it keep it alive until they close
    return key, engine


def run_choices(settings: AppSettings) -> list[tuple[str, str]]:
    from tunesmith.core.train.launcher import list_runs

    return [run_choice(r) for r in list_runs(settings.runs_root) if r.get("latest_checkpoint")]


def checkpoint_choices(run_dir: str) -> list[str]:
    from tunesmith.app.callbacks.export_cb import checkpoint_choices as choices

    return choices(run_dir)


def refresh(values: dict, settings: AppSettings) -> dict:
    """Tab opened: list runs with checkpoints; default to the newest so Chat talks to the result."""
    runs = run_choices(settings)
    current = values.get("chat/run")
    value = current if current in [r[1] for r in runs] else (runs[0][1] if runs else None)
    out = {"chat/run": Update(choices=runs, value=value),
           "chat/checkpoint": Update(choices=checkpoint_choices(value) if value else [],
                                     value="latest" if value else None)}
    if not values.get("chat/base"):
        out["chat/base"] = values.get("model.name_or_path") or ""
    if value and value != current and values.get(STATE) is None:
        out["chat/source"] = "run"  # a new run finished since the tab was last opened: talk to it
    return out


def pick_run(values: dict, settings: AppSettings) -> dict:
    run = values.get("chat/run")
    return {"chat/checkpoint": Update(choices=checkpoint_choices(run) if run else [], value="latest" if run else None)}


def _what_to_load(values: dict, settings: AppSettings) -> tuple[str, str | None, str]:
    """(model, adapter, label) for the chosen source, with every typed path checked."""
    source = values.get("chat/source") or "base"
    if source == "run":
        run = check_source(values.get("chat/run") or "", settings, "run folder", allow_hub=False)
        ckpt = values.get("chat/checkpoint") or "latest"
        path = Path(run) if ckpt == "latest" else Path(run) / "checkpoints" / ckpt
        if ckpt != "latest" and path.resolve().parent != (Path(run) / "checkpoints").resolve():
            raise UserError(f"checkpoint {ckpt} is not in {run}.", "Pick one from the Checkpoint list.")
        return str(path), None, f"{Path(run).name} ({ckpt})"
    if source == "merged":
        folder = check_source(values.get("chat/merged") or "", settings, "merged model folder", allow_hub=False)
        return folder, None, Path(folder).name
    if source != "base":
        raise UserError(f"unknown chat source {source!r}.", f"Choose one of {', '.join(SOURCES)}.")
    model = check_source(values.get("chat/base") or "", settings, "model", allow_embedded=True)
    return model, None, model


def generation_settings(values: dict):
    """The sampling boxes as validated GenerationSettings (out-of-range values named with a fix)."""
    from tunesmith.core.chat import GenerationSettings

    def number(elem_id, kind):
        value = values.get(elem_id)
        if value is None or value == "":
            raise UserError(f"{elem_id.split('/')[-1]} is empty.", "Type a number.", field=elem_id.split("/")[-1])
        if kind is int and float(value) != int(float(value)):
            raise UserError(f"{elem_id.split('/')[-1]} must be a whole number, got {value}.", "Type e.g. 256.",
                            field=elem_id.split("/")[-1])
        return kind(value)

    return GenerationSettings(max_new_tokens=number("chat/max_new_tokens", int),
                              temperature=number("chat/temperature", float), top_k=number("chat/top_k", int),
                              top_p=number("chat/top_p", float),
                              repetition_penalty=number("chat/repetition_penalty", float)).validated()


def load(values: dict, settings: AppSettings):
    """Generator: say what is loading, load (or reuse) the engine, start this session's conversation."""
    model, adapter, label = _what_to_load(values, settings)
    gen = generation_settings(values)
    yield {"chat/status": ok_html(text("chat_loading", lang_of(values), what=label))}
    key, engine = engine_for(model, adapter, bool(values.get("model.trust_remote_code")))
    template = _template(values, engine)
    system = values.get("chat/system") or None
    tuned = engine.new_session(system=system, settings=gen, template=template)
    base = engine.new_session(system=system, settings=gen, template=template, use_adapter=False) \
        if engine.has_adapter else None
    state = ChatState(key, label, tuned, base)
    lang = lang_of(values)
    yield {STATE: state, "chat/bot": [], "chat/bot_b": [],
           "chat/status": ok_html(text("chat_loaded", lang, what=label)),
           "chat/cmd": _command(values, model, gen),
           "chat/ab": Update(interactive=engine.has_adapter, value=bool(values.get("chat/ab")) and engine.has_adapter)}


def _command(values: dict, model: str, gen) -> str:
    """The CLI line that chats with the same model and the settings in the boxes now."""
    return commands.chat_command(model, template=values.get("chat/template") or "auto",
                                 system=values.get("chat/system") or "", temperature=gen.temperature,
                                 top_p=gen.top_p, top_k=gen.top_k, repetition_penalty=gen.repetition_penalty,
                                 max_new_tokens=gen.max_new_tokens)


def _template(values: dict, engine) -> str | None:
    from tunesmith.core.data.templates import resolve_template

    chosen = values.get("chat/template") or "auto"
    return None if chosen == "auto" else resolve_template(chosen, "")


def _apply(values: dict, state: ChatState) -> list:
    """Push the current system text, template and sampling settings into the session(s)."""
    gen = generation_settings(values)
    template = _template(values, state.tuned.engine)
    sessions = [state.tuned] + ([state.base] if state.base is not None and values.get("chat/ab") else [])
    for session in sessions:
        session.settings = gen
        session.system = values.get("chat/system") or ""
        session.template = template or session.engine.template
    return sessions


@contextmanager
def _streaming():
    with _STREAMING_LOCK:
        _STREAMING[0] += 1
    try:
        yield
    finally:
        with _STREAMING_LOCK:
            _STREAMING[0] -= 1


def update_interval(streaming: int | None = None) -> float:
    """Seconds between two updates of one streaming answer, given how many answers stream now.

    >>> update_interval(1), update_interval(3), update_interval(8)
    (0.1, 0.3, 0.5)
    """
    n = _STREAMING[0] if streaming is None else streaming
    return round(min(STREAM_EVERY_MAX_S, STREAM_EVERY_S * max(1, n)), 3)


def send(values: dict, settings: AppSettings):
    """Generator: stream the answer into the chat box (then the base model's, in A/B mode)."""
    state: ChatState | None = values.get(STATE)
    lang = lang_of(values)
    message = (values.get("chat/input") or "").strip()
    if not message:
        raise UserError(text("chat_empty", lang), text("chat_empty_fix", lang))
    if state is None:
        if not _chosen(values):
            raise UserError(text("chat_not_loaded", lang), text("chat_not_loaded_fix", lang))
        # Something is chosen (the finished run is pre-selected): the first Send loads it, as Load would.
        for update in load(values, settings):
            state = update.get(STATE, state)
            yield update
        values = {**values, STATE: state, "chat/bot": [], "chat/bot_b": []}
    ab = bool(values.get("chat/ab"))
    if ab and state.base is None:
        raise UserError("A/B needs a run or adapter loaded (base vs tuned).", "Choose 'run' as the source and Load.")
    sessions = _apply(values, state)
    boxes = ["chat/bot", "chat/bot_b"]
    shown = {box: list(values.get(box) or []) for box in boxes}
    for box, session in zip(boxes, sessions):
        shown[box] = shown[box] + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
    # the command line follows the boxes: sampling may have changed since Load
    yield {"chat/input": "", **{box: shown[box] for box in boxes[:len(sessions)]}, "chat/status": "",
           "chat/cmd": _command(values, state.key[0], sessions[0].settings)}
    for box, session in zip(boxes, sessions):
        answer, sent_at = "", 0.0
        with _streaming():
            for delta in session.stream(message):
                answer += delta
                if time.monotonic() - sent_at >= update_interval():
                    shown[box][-1] = {"role": "assistant", "content": answer}
                    yield {box: shown[box]}
                    sent_at = time.monotonic()
        shown[box][-1] = {"role": "assistant", "content": answer}
        info = session.last
        yield {box: shown[box], "chat/status": ok_html(answer_info(info, lang))}


def answer_info(info, lang: str) -> str:
    """The line under an answer, in plain words ("stopped: it said its stop word", not "stop: stop_word").

    >>> from types import SimpleNamespace as NS
    >>> answer_info(NS(new_tokens=12, tokens_per_s=30.0, stop_reason="stop_word", trimmed_turns=0), "en")
    '12 tokens · 30.0 tokens/s · ended: the model wrote its end-of-turn text'
    """
    reason = info.stop_reason or ""
    why = text(f"stop_{reason}", lang) if f"stop_{reason}" in MESSAGES.get(lang, MESSAGES["en"]) else reason
    shown = text("answer_info", lang, n=info.new_tokens, tps=f"{info.tokens_per_s:.1f}", why=why)
    return shown + (text("answer_trimmed", lang, n=info.trimmed_turns) if info.trimmed_turns else "")


def _chosen(values: dict) -> bool:
    """Whether the source boxes name something to load (a run, a merged folder or a base model)."""
    source = values.get("chat/source") or "base"
    return bool(values.get({"run": "chat/run", "merged": "chat/merged"}.get(source, "chat/base")))


def stop(values: dict) -> dict:
    state: ChatState | None = values.get(STATE)
    if state is not None:
        for session in (state.tuned, state.base):
            if session is not None:
                session.cancel()
    return {}


def clear(values: dict) -> dict:
    state: ChatState | None = values.get(STATE)
    if state is not None:
        for session in (state.tuned, state.base):
            if session is not None:
                session.reset()
    return {"chat/bot": [], "chat/bot_b": [], "chat/status": ""}


def source_fields(values: dict) -> dict:
    """Show only the boxes that the chosen source uses."""
    source = values.get("chat/source") or "base"
    return {"chat/base": Update(visible=source == "base"), "chat/run": Update(visible=source == "run"),
            "chat/checkpoint": Update(visible=source == "run"), "chat/merged": Update(visible=source == "merged")}


def toggle_ab(values: dict) -> dict:
    """A/B on: the two panes say which is which ("Tuned", "Base"); off: one pane, the chat."""
    from tunesmith.app.locales import label

    ab, lang = bool(values.get("chat/ab")), lang_of(values)
    return {"chat/bot_b": Update(visible=ab, label=text("pane_base", lang)),
            "chat/bot": Update(label=text("pane_tuned", lang) if ab else label("chat/bot", lang))}
