"""Chat tab callbacks on the tiny model: load, streamed answers, settings errors, Stop, Clear."""

from __future__ import annotations

import pytest

from tunesmith.app.callbacks import chat_cb
from tunesmith.app.settings import AppSettings
from tunesmith.core.errors import UserError


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
    assert steps[-1]["chat/cmd"].startswith("python -m tunesmith chat ")
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
    with pytest.raises(UserError, match="Load"):  # nothing chosen (with a model chosen, Send loads it)
        list(chat_cb.send(_values(tiny_model_dir, **{"chat/input": "hi", "chat/base": ""}), settings))
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

    from tunesmith.core.cli import build_parser

    state = list(chat_cb.load(_values(tiny_model_dir), settings))[-1]["chat/state"]
    changed = {"chat/max_new_tokens": 5, "chat/top_k": 7, "chat/temperature": 0.3, "chat/repetition_penalty": 1.2}
    first = next(chat_cb.send(_values(tiny_model_dir, **{"chat/state": state, "chat/input": "Hi"}, **changed),
                              settings))
    words = shlex.split(first["chat/cmd"])
    assert words[:4] == ["python", "-m", "tunesmith", "chat"]
    args = build_parser().parse_args(words[3:])
    assert (args.model, args.max_new_tokens, args.top_k, args.temperature, args.repetition_penalty, args.top_p) == \
        (str(tiny_model_dir), 5, 7, 0.3, 1.2, 0.75)


# ---- issue 12 item 11: a pre-selected model loads on the first Send; panes and words a user reads

def test_first_send_loads_what_is_chosen(settings, tiny_model_dir):
    values = _values(tiny_model_dir, **{"chat/state": None, "chat/input": "Hello there"})
    updates = list(chat_cb.send(values, settings))
    assert "Loading" in updates[0]["chat/status"]
    state = next(u["chat/state"] for u in updates if u.get("chat/state") is not None)
    assert state.tuned.history[-1]["role"] == "assistant"
    assert updates[-1]["chat/bot"][-2] == {"role": "user", "content": "Hello there"}
    assert "ended:" in updates[-1]["chat/status"] and "stop:" not in updates[-1]["chat/status"]
    # nothing chosen: the message says where to choose, not a bare "Load a model first"
    with pytest.raises(UserError, match="Load a model first") as err:
        list(chat_cb.send({**values, "chat/base": ""}, settings))
    assert "Choose what to talk to above" in err.value.fix


def test_ab_panes_say_tuned_and_base():
    on = chat_cb.toggle_ab({"chat/ab": True, "top/lang": "en"})
    assert on["chat/bot"]["label"] == "Tuned (with the adapter)" and on["chat/bot_b"] == {"visible": True,
                                                                                        "label": "Base (adapter off)"}
    assert chat_cb.toggle_ab({"chat/ab": False, "top/lang": "en"})["chat/bot"]["label"] == "Chat"
    assert chat_cb.toggle_ab({"chat/ab": True, "top/lang": "zh"})["chat/bot"]["label"] == "微调后（带适配器）"


def test_answer_line_and_model_facts_in_plain_words():
    from types import SimpleNamespace

    from tunesmith.app.render_data import facts_html

    info = SimpleNamespace(new_tokens=5, tokens_per_s=2.0, stop_reason="max_new_tokens", trimmed_turns=1)
    assert chat_cb.answer_info(info, "en") == ("5 tokens · 2.0 tokens/s · ended: reached Max new tokens"
                                              " · 1 old turn(s) left out to fit the context")
    html = facts_html({"kv_heads": 3, "tied_embeddings": True, "params": 134515008}, "en")
    assert '<td title="kv_heads" data-key="kv_heads">Key/value heads (grouped-query attention)</td>' in html
    assert "Input and output embeddings shared</td><td>yes" in html and "134.5 M" in html
    assert "键/值头数" in facts_html({"kv_heads": 3}, "zh")
