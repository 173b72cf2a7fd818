"""An OpenAI-compatible server for a base model, a run's adapter, a merged folder or a GGUF file.

Example::

    from tunesmith.core.serve import load_backend, start_server
    server = start_server(load_backend("work_dirs/my_run"))     # 127.0.0.1, any free port
    print(server.url)                                           # http://127.0.0.1:PORT/v1
    server.stop()

``python -m tunesmith serve SRC`` does the same from the command line (docs/export-chat.md).
"""

from tunesmith.core.serve.backends import GGUFBackend, HFBackend, load_backend
from tunesmith.core.serve.exposure import check_serve_exposure, is_loopback
from tunesmith.core.serve.server import RunningServer, serve, start_server

__all__ = ["load_backend", "HFBackend", "GGUFBackend", "start_server", "serve", "RunningServer",
           "check_serve_exposure", "is_loopback"]
