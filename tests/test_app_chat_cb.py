"""Chat tab callbacks on the tiny model: load, streamed answers, settings errors, Stop, Clear."""

from __future__ import annotations

import pytest

from app.callbacks import chat_cb
from app.settings import AppSettings
from core.errors import UserError


@pytest.fixture
def settings(tmp_path, tiny_model_dir):
    s = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")}, extra_roots=(str(tiny_model_dir),))
    s.ensure_dirs()
    return s


def _values(model_dir, **changes):
    v = {"chat/source": "base", "chat/base": str(model_dir), "chat/system": "", "chat/template": "auto",
         "chat/max_new_tokens": 12, "chat/temperature": 0, "chat/top_p": 0.75, "chat/top_k": 40,
         "chat/repetition_penalty": 1.0, "chat/ab": False, "top/lang": "en", "chat/bot": [], "chat/bot_b": []}
    v.update(changes)
    return v


def test_load_then_stream_an_answer(settings, tiny_model_dir):
    steps = list(chat_cb.load(_values(tiny_model_dir), settings))
    state = steps[-1]["chat/state"]
    assert "Loaded" in steps[-1]["chat/status"] and state.base is None
    assert steps[-1]["chat/cmd"].startswith("python -m core chat ")
    values = _values(tiny_model_dir, **{"chat/state": state, "chat/input": "Hello there"})
    updates = list(chat_cb.send(values, settings))
    assert updates[0]["chat/input"] == "" and updates[0]["chat/bot"][-2] == {"role": "user", "content": "Hello there"}
    streamed = [u["chat/bot"][-1]["content"] for u in updates[1:] if "chat/bot" in u]
    assert len(streamed) >= 2 and streamed[-1]  # text arrived in pieces
    assert all(streamed[i + 1].startswith(streamed[i]) for i in range(len(streamed) - 2))
    assert "tokens/s" in updates[-1]["chat/status"]
    assert state.tuned.history[-1]["content"] == streamed[-1]

    # a second browser session gets its own conversation on the same loaded engine
    other = list(chat_cb.load(_values(tiny_model_dir), settings))[-1]["chat/state"]
    assert other.tuned.engine is state.tuned.engine and other.tuned.history == []

    assert chat_cb.clear({"chat/state": state}) == {"chat/bot": [], "chat/bot_b": [], "chat/status": ""}
    assert state.tuned.history == []
    assert chat_cb.stop({"chat/state": state}) == {}


def test_bad_inputs_give_clear_messages(settings, tiny_model_dir):
    with pytest.raises(UserError, match="Load"):
        list(chat_cb.send(_values(tiny_model_dir, **{"chat/input": "hi"}), settings))
    state = list(chat_cb.load(_values(tiny_model_dir), settings))[-1]["chat/state"]
    base = _values(tiny_model_dir, **{"chat/state": state, "chat/input": "hi"})
    with pytest.raises(UserError, match="top_p"):
        list(chat_cb.send({**base, "chat/top_p": 1.5}, settings))
    with pytest.raises(UserError, match="max_new_tokens must be a whole number"):
        list(chat_cb.send({**base, "chat/max_new_tokens": 2.5}, settings))
    with pytest.raises(UserError, match="A/B needs a run"):
        list(chat_cb.send({**base, "chat/ab": True}, settings))
    with pytest.raises(UserError, match="empty"):
        list(chat_cb.send({**base, "chat/input": "  "}, settings))
    with pytest.raises(UserError, match="outside the folders"):
        list(chat_cb.load(_values("/etc"), settings))
    with pytest.raises(UserError, match="unknown prompt template"):
        list(chat_cb.send({**base, "chat/template": "nope"}, settings))


def test_the_command_line_follows_the_sampling_boxes_and_parses(settings, tiny_model_dir):
    """Changed after Load, the sampling reaches the shown CLI line, and the CLI reads it back the same."""
    import shlex

    from core.cli import build_parser

    state = list(chat_cb.load(_values(tiny_model_dir), settings))[-1]["chat/state"]
    changed = {"chat/max_new_tokens": 5, "chat/top_k": 7, "chat/temperature": 0.3, "chat/repetition_penalty": 1.2}
    first = next(chat_cb.send(_values(tiny_model_dir, **{"chat/state": state, "chat/input": "Hi"}, **changed),
                              settings))
    words = shlex.split(first["chat/cmd"])
    assert words[:4] == ["python", "-m", "core", "chat"]
    args = build_parser().parse_args(words[3:])
    assert (args.model, args.max_new_tokens, args.top_k, args.temperature, args.repetition_penalty, args.top_p) == \
        (str(tiny_model_dir), 5, 7, 0.3, 1.2, 0.75)
