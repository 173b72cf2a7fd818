"""Run an evaluation as its own process group, like a training run (no torch import here).

The evaluation folder (``RUN_DIR/eval/<name>/``) is a small run folder: ``request.json`` (what to
evaluate), ``status.json`` (state, ``progress`` 0..1, message; written atomically by
:class:`~tunesmith.core.train.rundir.RunDir`), ``train.log`` (the process output), ``STOP``, ``.lock``, and at the
end ``summary.json`` + ``examples.jsonl``. The same supervisor as training leads the group, so
:func:`tunesmith.core.train.launcher.attach` handles, ``python -m tunesmith stop EVAL_DIR``, SIGTERM and a second
stop (kill) all work unchanged.
"""

from __future__ import annotations

import json
import os
import sys
import time

from tunesmith.core.eval.report import EXAMPLES, REQUEST, SUMMARY
from tunesmith.core.eval.runner import EvalRequest, make_plan
from tunesmith.core.files import atomic_write_text
from tunesmith.core.train.launcher import RunHandle, spawn_supervised, supervised
from tunesmith.core.train.rundir import RunDir


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
        cmd = [sys.executable, "-m", "tunesmith.core.eval.entry", str(rd.path)]
        return spawn_supervised(rd, supervised(rd, cmd), lock_fd, f"evaluate {req.src}")
    finally:
        os.close(lock_fd)  # the supervisor holds its own copy of the locked descriptor

