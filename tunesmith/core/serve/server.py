"""Running the API: ``serve()`` for the CLI (blocks), ``start_server()`` for tests and embedding (a thread).

uvicorn gets an already bound socket, so port 0 (any free port) works and the real address is known
before the first request.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from tunesmith.core.errors import UserError
from tunesmith.core.serve.exposure import check_serve_exposure

READY_PREFIX = "tunesmith serve: ready at "  # the line the GUI waits for in the server's log


@dataclass
class RunningServer:
    url: str            # http://HOST:PORT/v1
    server: object      # uvicorn.Server
    thread: threading.Thread | None = None

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}.",
                        "Pick another --port (0 = any free one), or stop what uses it.") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _server(app, sock: socket.socket, log_level: str):
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5,
                            lifespan="off")
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return server, f"http://{shown}:{port}/v1"


def start_server(backend, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 log_level: str = "warning") -> RunningServer:
    """Serve ``backend`` from a background thread; returns when it accepts connections."""
    from tunesmith.core.serve.api import build_app

    check_serve_exposure(host, api_key)
    sock = bind(host, port)
    server, url = _server(build_app(backend, api_key=api_key), sock, log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="tunesmith-serve", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.02)
    if not server.started:
        raise RuntimeError("the server thread ended before it started")
    return RunningServer(url, server, thread)


def serve(backend, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          log_level: str = "info", announce=print) -> None:
    """Serve until Ctrl-C / SIGTERM (uvicorn's own signal handling)."""
    from tunesmith.core.serve.api import build_app

    check_serve_exposure(host, api_key)
    sock = bind(host, port)
    server, url = _server(build_app(backend, api_key=api_key), sock, log_level)
    original = server.startup

    async def startup(sockets=None):
        await original(sockets=sockets)
        announce(f"{READY_PREFIX}{url}")

    server.startup = startup
    server.run(sockets=[sock])
