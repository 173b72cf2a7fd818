"""Chat tab "Serve this model": the callbacks start `python -m tunesmith serve` as a subprocess, show how to call it,
and stop it (no browser)."""

from __future__ import annotations

import socket

import pytest

from tunesmith.app.callbacks import serve_cb
from tunesmith.app.settings import AppSettings
from tunesmith.core.errors import UserError


@pytest.fixture
def settings(tmp_path, tiny_model_dir):
    s = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")}, extra_roots=(str(tiny_model_dir),))
    s.ensure_dirs()
    return s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _values(model_dir, **changes):
    v = {"chat/source": "base", "chat/base": str(model_dir), "chat/system": "", "chat/template": "auto",
         "chat/max_new_tokens": 8, "chat/temperature": 0, "chat/top_p": 0.75, "chat/top_k": 40,
         "chat/repetition_penalty": 1.0, "chat/serve_port": _free_port(), "top/lang": "en"}
    v.update(changes)
    return v


def test_serve_command_follows_the_chat_boxes(settings, tiny_model_dir):
    values = _values(tiny_model_dir, **{"chat/template": "qwen_chat", "chat/system": "Be brief.",
                                        "chat/serve_port": 8123})
    cmd, model_id, _ = serve_cb.serve_command(values, settings)
    assert cmd[1:5] == ["-m", "tunesmith", "serve", str(tiny_model_dir)]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--prompt-template") + 1] == "qwen_chat" and cmd[cmd.index("--system") + 1] == "Be brief."
    assert cmd[cmd.index("--temperature") + 1] == "0.0" and model_id == tiny_model_dir.name
    from tunesmith.core.cli import build_parser

    args = build_parser().parse_args(cmd[3:])  # the CLI takes the command as built
    assert (args.port, args.prompt_template, args.max_new_tokens) == (8123, "qwen_chat", 8)
    with pytest.raises(UserError, match="port 80 is out of range"):
        serve_cb.serve_command(_values(tiny_model_dir, **{"chat/serve_port": 80}), settings)


@pytest.mark.slow  # a real server subprocess: the fast tier keeps the cheaper tests of the same code
def test_serve_starts_answers_and_stops(settings, tiny_model_dir):
    openai = pytest.importorskip("openai")
    values = _values(tiny_model_dir)
    steps = list(serve_cb.start(values, settings, timeout=240))
    assert "Starting the API server" in steps[0]["chat/serve_status"]
    url = f"http://127.0.0.1:{values['chat/serve_port']}/v1"
    assert url in steps[-1]["chat/serve_status"], steps[-1]
    info = steps[-1]["chat/serve_info"]
    assert f"curl {url}/chat/completions" in info and f'base_url="{url}"' in info
    assert f'model="{tiny_model_dir.name}"' in info
    served = serve_cb.current()
    try:
        with pytest.raises(UserError, match="already running"):
            list(serve_cb.start(values, settings))
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=60)
        reply = client.chat.completions.create(model=tiny_model_dir.name, temperature=0, max_tokens=4,
                                               messages=[{"role": "user", "content": "Who are you?"}])
        assert reply.usage.completion_tokens >= 1
    finally:
        out = serve_cb.stop({"top/lang": "zh"})
    assert out["chat/serve_status"].endswith("API 服务已停止。</div>") and served.proc.poll() is not None
    assert serve_cb.current() is None
    assert "没有正在运行" in serve_cb.stop({"top/lang": "zh"})["chat/serve_status"]


@pytest.mark.slow  # over 2.5 s: kept out of make test-fast
def test_a_server_that_cannot_load_says_why(settings, tmp_path):
    bad = tmp_path / "home" / "not-a-model"
    bad.mkdir(parents=True)
    (bad / "config.json").write_text("{}")
    values = _values(bad)
    with pytest.raises(UserError, match="exited with code 2"):
        list(serve_cb.start(values, settings, timeout=120))
    assert serve_cb.current() is None
