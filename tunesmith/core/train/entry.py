"""The trainer process: ``python -m tunesmith.core.train.entry RUN_DIR`` (torchrun / srun run one per rank).

It reads RUN_DIR/config.yaml (written by the launcher), trains, and reports through the run
folder. Only global rank 0 writes metrics, samples, checkpoints' renames and status.json; a
non-zero rank that fails leaves its error in RUN_DIR/.errors/rank-N.json for the supervisor.

SIGTERM/SIGINT ask for a graceful stop (checkpoint at the next step, all ranks agree on which);
a second one ends the run's whole process group at once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback

from tunesmith.core.train.dist import context_from_env
from tunesmith.core.train.failures import explain_exception, relevant_lines
from tunesmith.core.train.rundir import RunDir
from tunesmith.core.train.trainer import Faults
from tunesmith.core.train.workflow import Session, StoppedEarly

_LOCK_FD: int | None = None  # held for the life of an unsupervised rank-0 process


def _install_signals(session: Session) -> None:
    count = {"n": 0}

    def handler(signum, _frame):
        count["n"] += 1
        if count["n"] == 1:
            session.stop.set(signal.Signals(signum).name)
            print(f"[tunesmith] {signal.Signals(signum).name}: stopping at the next step (again to kill)", flush=True)
            return
        if os.environ.get("TUNESMITH_SUPERVISED") == "1":
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(137)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def node_dir(rd: RunDir, ctx) -> RunDir | None:
    """This machine's control folder (RUN_DIR/nodes/node-R) when this rank runs on a node other than node 0.

    Global rank 0 reports for the whole run in RUN_DIR, but every other machine has a supervisor of its
    own that waits for a result in its control folder: without one there, it calls a run that trained
    fine a failure.
    """
    path = os.environ.get("TUNESMITH_NODE_DIR")
    if ctx.is_main or not path:
        return None
    node = RunDir(path)
    return None if node.path == rd.path else node


def run(run_dir: str, launcher: str = "", *, install_signals: bool = True, take_lock: bool = True) -> int:
    """Train the run in ``run_dir`` in this process; returns the exit code (0 finished/stopped, 1 failed)."""
    global _LOCK_FD
    rd = RunDir(run_dir)
    ctx = context_from_env(launcher)
    node = node_dir(rd, ctx)
    node_leader = node if node is not None and ctx.local_rank == 0 else None
    session = Session(rd=rd, ctx=ctx, faults=Faults.from_env())
    if install_signals:
        _install_signals(session)
    if take_lock and ctx.is_main and os.environ.get("TUNESMITH_SUPERVISED") != "1":
        _LOCK_FD = rd.acquire_lock()  # run by hand: still refuse a second run on this folder
    try:
        from tunesmith.core.config import RunConfig

        cfg = RunConfig.load(rd.config_path)
        if ctx.is_main:
            prior = earlier_elapsed(rd) if cfg.training.resume_from else 0.0
            rd.write_status(state="running", message="Starting.", trainer_pid=os.getpid(),
                            world_size=ctx.world_size, error=None, advice=None, elapsed_prior_s=prior)
        if node_leader:
            node_leader.write_status(state="running", message=f"Training; rank 0 reports progress in {rd.path}.",
                                     trainer_pid=os.getpid(), world_size=ctx.world_size, error=None, advice=None)
        if cfg.distributed.deepspeed:
            from tunesmith.core.train.dist import fix_cpu_deepspeed_world_size

            fix_cpu_deepspeed_world_size()
        if cfg.method.stage in ("dpo", "orpo"):
            from tunesmith.core.train.preference import run_preference as workflow
        else:
            from tunesmith.core.train.sft import run_sft as workflow
        outcome = workflow(cfg, session)
    except StoppedEarly as exc:
        for where in filter(None, (rd if ctx.is_main else None, node_leader)):
            where.write_status(state="stopped", message=str(exc), error=None)
        return 0
    except BaseException as exc:  # report every failure in plain words, then exit non-zero
        _report_failure(rd, ctx, exc, node)
        return 1
    finally:
        _shutdown_distributed()
        if ctx.is_main:
            record_elapsed(rd)
    if ctx.is_main:
        rd.write_status(state=outcome.state, message=outcome.message, step=outcome.step,
                        total_steps=outcome.total_steps, latest_checkpoint=outcome.checkpoint, error=None, advice=None)
        print(f"[tunesmith] {outcome.message}", flush=True)
    if node_leader:
        node_leader.write_status(state=outcome.state, message=f"This node's part is done. {outcome.message}",
                                 step=outcome.step, total_steps=outcome.total_steps,
                                 latest_checkpoint=outcome.checkpoint, error=None, advice=None)
    return 0


ELAPSED_FILE = "elapsed.json"  # outlives the fresh status.json of a Resume


def earlier_elapsed(rd: RunDir) -> float:
    """Seconds this run folder's earlier attempts took (so elapsed time goes on after Resume)."""
    try:
        return float(json.loads((rd.path / ELAPSED_FILE).read_text(encoding="utf-8"))["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def record_elapsed(rd: RunDir) -> None:
    """Every attempt's time from Start (the launcher's started_at) to now, in status.json and elapsed.json."""
    import time

    status = rd.read_status()
    started = status.get("started_at")
    if not isinstance(started, (int, float)):
        return
    total = round(float(status.get("elapsed_prior_s") or 0.0) + time.time() - started, 1)
    try:
        (rd.path / ELAPSED_FILE).write_text(json.dumps({"seconds": total}), encoding="utf-8")
        rd.write_status(elapsed_total_s=total)
    except OSError:  # a full disk must not turn a finished run into a failed one
        pass


def _report_failure(rd: RunDir, ctx, exc: BaseException, node: RunDir | None = None) -> None:
    trace = traceback.format_exception(exc)
    sys.stderr.write("".join(trace))
    sys.stderr.flush()
    latest = rd.latest_checkpoint()
    explained = explain_exception(exc, latest_checkpoint=latest.name if latest else None)
    lines = "".join(trace).splitlines()
    explained["log"] = relevant_lines(lines) if explained["kind"] in ("crash", "missing_package") else lines[-3:]
    explained["rank"] = ctx.rank
    if ctx.is_main:
        rd.write_status(state="failed", message=explained["error"], latest_checkpoint=latest.name if latest else None,
                        **explained)
    else:
        # RUN_DIR/.errors for node 0's supervisor; the node's own folder for this machine's supervisor.
        for where in filter(None, (rd, node)):
            where.errors_dir.mkdir(parents=True, exist_ok=True)
            (where.errors_dir / f"rank-{ctx.rank}.json").write_text(json.dumps(explained, indent=1),
                                                                     encoding="utf-8")
    print(f"[tunesmith] failed: {explained['error']} {explained.get('advice', '')}", file=sys.stderr, flush=True)


def _shutdown_distributed() -> None:
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # already torn down by a failure elsewhere
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunesmith.core.train.entry", description="Run one trainer rank.")
    parser.add_argument("run_dir")
    parser.add_argument("--launcher", default="", choices=["", "python", "torchrun", "pytorch", "slurm"])
    parser.add_argument("--local-rank", "--local_rank", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return run(args.run_dir, args.launcher)


if __name__ == "__main__":
    raise SystemExit(main())
