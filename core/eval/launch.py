"""Run an evaluation as its own process group, like a training run (no torch import here).

The evaluation folder (``RUN_DIR/eval/<name>/``) is a small run folder: ``request.json`` (what to
evaluate), ``status.json`` (state, ``progress`` 0..1, message; written atomically by
:class:`~core.train.rundir.RunDir`), ``train.log`` (the process output), ``STOP``, ``.lock``, and at the
end ``summary.json`` + ``examples.jsonl``. The same supervisor as training leads the group, so
:func:`core.train.launcher.attach` handles, ``python -m core stop EVAL_DIR``, SIGTERM and a second
stop (kill) all work unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from core.eval.report import EXAMPLES, REQUEST, SUMMARY
from core.eval.runner import EvalRequest, make_plan
from core.files import atomic_write_text
from core.paths import REPO_ROOT
from core.train.launcher import RunHandle
from core.train.rundir import RunDir


def start(request: EvalRequest) -> RunHandle:
    """Check the request (no weights loaded), write the evaluation folder, start the process; return at once.

    Raises UserError for a bad request and RunDirBusy when an evaluation of that name is running.
    """
    plan = make_plan(request)  # bad paths / names fail here, in the caller, not in a log file
    req = plan.request
    req.out_dir = str(plan.out_dir)
    rd = RunDir(plan.out_dir)
    lock_fd = rd.acquire_lock()
    try:
        rd.clear_stop()
        for name in (SUMMARY, EXAMPLES):  # results of an earlier evaluation of this name would look current
            (rd.path / name).unlink(missing_ok=True)
        atomic_write_text(rd.path / REQUEST, json.dumps(req.to_dict(), indent=1))
        rd.status_path.unlink(missing_ok=True)
        rd.write_status(state="starting", message="Starting the evaluation.", progress=0.0, kind=None, error=None,
                        advice=None, exit_code=None, started_at=time.time(), src=req.src, data=plan.data_label,
                        eval_dir=str(rd.path), pid=None, pgid=None)
        cmd = [sys.executable, "-m", "core.eval.entry", str(rd.path)]
        wrapper = [sys.executable, "-m", "core.train.supervise", str(rd.path), "--", *cmd]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        with open(rd.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} evaluate {req.src}\n".encode())
            log.flush()
            popen = subprocess.Popen(wrapper, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(lock_fd,))
    finally:
        os.close(lock_fd)  # the supervisor holds its own copy of the locked descriptor
    create_time = None
    try:
        import psutil

        create_time = psutil.Process(popen.pid).create_time()
    except Exception:  # already gone: status() will tell
        pass
    rd.write_status(pid=popen.pid, pgid=popen.pid, pid_create_time=create_time)
    return RunHandle(rd.path, popen.pid, popen=popen, create_time=create_time)

