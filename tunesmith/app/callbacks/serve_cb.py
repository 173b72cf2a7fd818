"""Chat tab, "Serve this model": run ``python -m tunesmith serve`` for the chosen model as a subprocess.

A subprocess, not a thread of the studio: its model load and its requests do not compete with the
page for the studio's interpreter, and Stop is a plain terminate. It listens on 127.0.0.1 only (no key
needed); the studio never exposes it further. One server at a time per studio; it ends with the studio.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tunesmith.app.callbacks.chat_cb import _what_to_load, generation_settings
from tunesmith.app.callbacks.common import lang_of
from tunesmith.app.locales import text
from tunesmith.app.registry import ok_html
from tunesmith.app.settings import AppSettings
from tunesmith.core import paths
from tunesmith.core.errors import UserError

HOST = "127.0.0.1"
DEFAULT_PORT = 8000
READY_TIMEOUT_S = 600.0
POLL_S = 0.5


@dataclass
class Served:
    proc: subprocess.Popen
    url: str
    model_id: str
    label: str
    log_path: Path
    command: list


_LOCK = threading.Lock()
_CURRENT: list = [None]  # the Served started by this studio, shared by every browser tab


def current() -> Served | None:
    served = _CURRENT[0]
    return served if served is not None and served.proc.poll() is None else None


def _port(values: dict) -> int:
    value = values.get("chat/serve_port")
    try:
        port = int(float(value if value not in (None, "") else DEFAULT_PORT))
    except (TypeError, ValueError):
        raise UserError(f"port must be a number, got {value!r}.", "Type e.g. 8000.", field="port") from None
    if not 1024 <= port <= 65535:
        raise UserError(f"port {port} is out of range.", "Use 1024-65535 (8000 is usual).", field="port")
    return port


def serve_command(values: dict, settings: AppSettings) -> tuple[list, str, str]:
    """(argv, model id, label) of the server for the model chosen in the Chat tab and its sampling boxes."""
    from tunesmith.core.serve.backends import default_model_id

    model, _adapter, label = _what_to_load(values, settings)
    gen = generation_settings(values)
    cmd = [sys.executable, "-m", "tunesmith", "serve", model, "--host", HOST, "--port", str(_port(values)),
           "--max-new-tokens", str(gen.max_new_tokens), "--temperature", str(gen.temperature),
           "--top-k", str(gen.top_k), "--top-p", str(gen.top_p), "--repetition-penalty", str(gen.repetition_penalty)]
    template = values.get("chat/template") or "auto"
    if template != "auto":
        cmd += ["--prompt-template", template]
    if values.get("chat/system"):
        cmd += ["--system", values["chat/system"]]
    if values.get("model.trust_remote_code"):
        cmd.append("--trust-remote-code")
    return cmd, default_model_id(model), label


def examples(url: str, model_id: str) -> str:
    """Markdown: the URL, a curl line and the openai Python client, ready to copy."""
    payload = ('{"model": "%s", "messages": [{"role": "user", "content": "Who are you?"}]}' % model_id)
    return (f"**{url}**\n\n```bash\ncurl {url}/chat/completions -H 'Content-Type: application/json' \\\n"
            f"  -d '{payload}'\n```\n\n```python\nfrom openai import OpenAI\n"
            f"client = OpenAI(base_url=\"{url}\", api_key=\"none\")\n"
            f"reply = client.chat.completions.create(model=\"{model_id}\",\n"
            f"    messages=[{{\"role\": \"user\", \"content\": \"Who are you?\"}}])\n"
            f"print(reply.choices[0].message.content)\n```")


def _log_tail(path: Path, n: int = 6) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _ready_url(path: Path) -> str | None:
    from tunesmith.core.serve.server import READY_PREFIX

    try:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX):].split()[0]
    except OSError:
        return None
    return None


def start(values: dict, settings: AppSettings, *, timeout: float = READY_TIMEOUT_S):
    """Generator: start the server, say so while the model loads, then show the URL and examples."""
    lang = lang_of(values)
    cmd, model_id, label = serve_command(values, settings)
    with _LOCK:
        running = current()
        if running is not None:
            raise UserError(text("serve_busy", lang, what=running.label, url=running.url),
                            text("serve_busy_fix", lang))
        log_dir = settings.home / "serve"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"serve-{cmd[cmd.index('--port') + 1]}.log"
        env = paths.child_env(PYTHONUNBUFFERED="1")
        env.pop("TUNESMITH_API_KEY", None)  # loopback only: a key inherited from the studio's shell would lock it
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    cwd=str(paths.SOURCE_ROOT), start_new_session=True)
        served = Served(proc, "", model_id, label, log_path, cmd)
        _CURRENT[0] = served
    yield {"chat/serve_status": ok_html(text("serve_loading", lang, what=label)),
           "chat/serve_info": f"```bash\n{shlex.join(cmd[1:]).replace(shlex.quote(sys.executable), 'python')}\n```"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = _ready_url(log_path)
        if url:
            served.url = url
            yield {"chat/serve_status": ok_html(text("serve_ready", lang, what=label, url=url)),
                   "chat/serve_info": examples(url, model_id)}
            return
        if proc.poll() is not None:
            raise UserError(text("serve_failed", lang, code=proc.returncode, log=_log_tail(log_path)),
                            text("serve_failed_fix", lang))
        time.sleep(POLL_S)
    stop_server()
    raise UserError(text("serve_timeout", lang, seconds=int(timeout)), text("serve_failed_fix", lang))


def stop_server(timeout: float = 10.0) -> bool:
    """Terminate the server (its whole process group); True when one was running."""
    with _LOCK:
        served, _CURRENT[0] = _CURRENT[0], None
    if served is None or served.proc.poll() is not None:
        return False
    try:
        os.killpg(served.proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    try:
        served.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(served.proc.pid, signal.SIGKILL)
        served.proc.wait(timeout)
    return True


def stop(values: dict) -> dict:
    lang = lang_of(values)
    was = stop_server()
    return {"chat/serve_status": ok_html(text("serve_stopped" if was else "serve_none", lang)), "chat/serve_info": ""}


atexit.register(stop_server)  # no orphan server holding the port (and the model's memory) after the studio
