"""Start the Tunesmith studio: ``tunesmith studio [--host 127.0.0.1] [--port 7860] [--lang en|zh]
[--share] [--auth user:pass] [--insecure-no-auth] [--runs-root DIR] [--allow-dir DIR]...``

The flags are checked before gradio is even imported, so a refused exposure fails in a blink.
Binding anything but loopback, or --share, needs --auth (or an explicit --insecure-no-auth).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

T0 = time.monotonic()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunesmith studio", description="Tunesmith studio (Gradio GUI).")
    p.add_argument("--host", default=os.environ.get("TUNESMITH_HOST", "127.0.0.1"),
                   help="address to bind (default 127.0.0.1: only this machine)")
    p.add_argument("--port", type=int, default=int(os.environ.get("TUNESMITH_PORT", "7860")))
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="UI language at start (switchable live)")
    p.add_argument("--share", action="store_true", help="also serve on a public gradio.live link (needs --auth)")
    p.add_argument("--auth", default=os.environ.get("TUNESMITH_AUTH"), metavar="USER:PASS",
                   help="require this user name and password")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="allow --share or a non-loopback --host without a password (not recommended)")
    p.add_argument("--runs-root", default=None, metavar="DIR",
                   help="folder of training runs (default $TUNESMITH_RUNS or $TUNESMITH_HOME/runs)")
    p.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                   help="another folder that paths typed in the browser may use (repeatable)")
    p.add_argument("--max-upload-mb", type=int, default=None, help="largest accepted upload (default 512)")
    p.add_argument("--login-max-failures", type=int, default=5, metavar="N",
                   help="with --auth: wrong passwords in a row before a client is locked out (default 5)")
    p.add_argument("--login-lockout-s", type=float, default=60.0, metavar="S",
                   help="with --auth: first lockout in seconds, doubling with each further one (default 60)")
    p.add_argument("--no-queue-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-warm-up", action="store_true",
                   help="do not import torch/transformers in the background after start-up "
                        "(less idle memory; the first Load, preview or estimate is slower)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tunesmith.app.security import check_exposure
    from tunesmith.core.errors import UserError

    try:
        exposure = check_exposure(args.host, args.share, args.auth, args.insecure_no_auth)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if exposure.warning:
        print(exposure.warning, file=sys.stderr, flush=True)

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tunesmith.app.settings import AppSettings, launch_roots

    settings = AppSettings.from_env(runs_root=args.runs_root, lang=args.lang, max_upload_mb=args.max_upload_mb,
                                    extra_roots=launch_roots(args.host, args.share, args.allow_dir))
    settings.ensure_dirs()
    from tunesmith.app.css import CSS, head_script
    from tunesmith.app.run_queue import QueueWorker
    from tunesmith.app.ui import build_app

    auth, app_kwargs = None, {}
    if exposure.auth:
        from starlette.middleware import Middleware

        from tunesmith.app.security import ClientHostMiddleware, LoginThrottle

        # A plain (user, password) tuple lets a client guess as fast as it can send requests.
        auth = LoginThrottle(*exposure.auth, max_failures=max(1, args.login_max_failures),
                             lockout_s=max(0.0, args.login_lockout_s)).login
        app_kwargs = {"middleware": [Middleware(ClientHostMiddleware)]}
    demo, _ = build_app(settings)
    if not args.no_queue_worker:
        QueueWorker(settings).start()
    if not args.no_warm_up:
        from tunesmith.app.callbacks.common import warm_up_in_background

        warm_up_in_background()
    print(f"Tunesmith: runs in {settings.runs_root}, uploads in {settings.uploads_dir} "
          f"(built in {time.monotonic() - T0:.1f}s)", flush=True)
    demo.queue(default_concurrency_limit=8).launch(
        server_name=args.host, server_port=args.port, share=args.share, auth=auth,
        auth_message="Tunesmith" if exposure.auth else None, css=CSS, head=head_script(settings.lang),
        show_error=True, quiet=False,
        max_file_size=f"{settings.max_upload_mb}mb", ssr_mode=False, footer_links=[],
        allowed_paths=[str(settings.home / "configs")], app_kwargs=app_kwargs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
