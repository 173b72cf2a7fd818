"""``python -m tunesmith.core.eval.entry EVAL_DIR``: the evaluation process started by :func:`tunesmith.core.eval.launch.start`.

It reads request.json, reports progress into status.json after every batch and stops between two
batches when STOP appears (the supervisor writes it on SIGTERM; a SIGTERM sent to this process
itself does the same).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback

from tunesmith.core.errors import DataError, UserError
from tunesmith.core.eval.report import REQUEST, format_table
from tunesmith.core.eval.runner import EvalRequest, EvalStopped, evaluate
from tunesmith.core.train.rundir import RunDir


def run(eval_dir: str) -> int:
    rd = RunDir(eval_dir)
    req = EvalRequest.from_dict(json.loads((rd.path / REQUEST).read_text(encoding="utf-8")))

    def on_signal(_signum, _frame):
        rd.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    rd.write_status(state="running", message="Loading the models.", progress=0.0, eval_pid=os.getpid())

    pause = _fault_sleep()

    def progress(fraction: float, message: str) -> None:
        if pause and fraction > 0:
            time.sleep(pause)
        state = "stopping" if rd.stop_requested() else "running"
        rd.write_status(state=state, progress=round(fraction, 4), message=f"{fraction:.0%} {message}")

    try:
        result = evaluate(req, progress=progress, should_stop=rd.stop_requested)
    except EvalStopped:
        rd.write_status(state="stopped", message="Stopped on request; no results were written.", exit_code=0)
        return 0
    except UserError as exc:
        rd.write_status(state="failed", message=str(exc), error=exc.message, advice=exc.fix,
                        kind="bad_data" if isinstance(exc, DataError) else "bad_config", log=[], exit_code=2)
        print(f"error: {exc}", flush=True)
        return 2
    except Exception as exc:  # a bug: keep the traceback in the log, a plain line in the status
        traceback.print_exc()
        rd.write_status(state="failed", message=f"The evaluation crashed: {type(exc).__name__}: {exc}",
                        error=f"{type(exc).__name__}: {exc}", advice=f"See {rd.log_path}.", kind="crash",
                        log=traceback.format_exc().splitlines()[-8:], exit_code=1)
        return 1
    print(format_table(result.summary), flush=True)
    rd.write_status(state="finished", progress=1.0, message=result.summary["verdict"], exit_code=0,
                    n=result.summary["n"])
    return 0


def _fault_sleep() -> float:
    """TUNESMITH_FAULT=sleep_per_batch:S slows every batch down, so tests and drills can stop one midway."""
    for part in os.environ.get("TUNESMITH_FAULT", "").split(","):
        name, _, value = part.partition(":")
        if name.strip() == "sleep_per_batch":
            return float(value or 0)
    return 0.0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m tunesmith.core.eval.entry EVAL_DIR", file=sys.stderr)
        return 2
    return run(argv[0])


if __name__ == "__main__":
    raise SystemExit(main())
