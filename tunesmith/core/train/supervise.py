"""The small process that leads a run's process group: ``python -m tunesmith.core.train.supervise RUN_DIR -- CMD...``.

Why it exists: torchrun (or a trainer that crashes hard) cannot always say how it ended, and a GUI
may be gone by then. The supervisor, which imports no torch, holds the run-directory lock (the
descriptor is inherited from the launcher), starts CMD in the same process group, and when CMD
ends it

* ends any process of the group left behind (e.g. a torchrun worker orphaned by a crash),
* writes the final state into status.json when the trainer could not (killed, segfault, torchrun
  tearing workers down), in plain words with the relevant log lines.

SIGTERM/SIGINT/SIGHUP ask for a graceful stop (the STOP file, seen by every rank at the next step);
a second one kills the whole group at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tunesmith.core.train import procs
from tunesmith.core.train.failures import explain_exit, relevant_lines
from tunesmith.core.train.rundir import TERMINAL_STATES, RunDir


class _Supervisor:
    def __init__(self, rd: RunDir, cmd: list[str]):
        self.rd = rd
        self.cmd = cmd
        self.child: subprocess.Popen | None = None
        self.requests = 0

    def on_signal(self, signum, _frame) -> None:
        self.requests += 1
        if self.requests == 1:
            self.rd.request_stop()
            self.rd.write_status(state="stopping", message="Stop requested: saving a checkpoint at the next step.")
            print(f"[supervisor] {signal.Signals(signum).name}: stop requested (send again to kill)", flush=True)
        else:
            print("[supervisor] second stop request: killing the run", flush=True)
            self.kill_children()
            self.rd.write_status(state="stopped", message="Killed on a second stop request.", exit_code=-9,
                                 latest_checkpoint=_name(self.rd.latest_checkpoint()))
            os._exit(137)

    def kill_children(self) -> None:
        procs.kill_group(os.getpgrp(), root_pid=os.getpid(), timeout=10,
                         also=procs.recorded_processes(self.rd.read_status().get("procs")))

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.on_signal)
        procs.set_child_subreaper()  # workers orphaned by a dying torchrun come back to us
        self.rd.write_status(supervisor_pid=os.getpid(), pgid=os.getpgrp())
        try:
            self.child = subprocess.Popen(self.cmd)
        except FileNotFoundError as exc:
            self.rd.write_status(state="failed", error=f"Cannot start the trainer: {exc.filename} was not found.",
                                 advice="Install it (torchrun comes with PyTorch; srun with Slurm) or pick "
                                        "another launcher.", exit_code=127, kind="missing_program")
            return 127
        self.rd.write_status(child_pid=self.child.pid)
        seen: list = []
        while True:
            try:
                code = self.child.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                now = procs.snapshot(os.getpid())
                if now and {p for p, _ in now} != {p for p, _ in seen}:
                    seen = now  # every process of the run, so it can be ended even without us
                    self.rd.write_status(procs=seen)
            except InterruptedError:
                continue
        time.sleep(0.2)
        leftovers = procs.group_processes(os.getpgrp(), root_pid=os.getpid(), exclude_self=True)
        if leftovers:
            print(f"[supervisor] ending {len(leftovers)} process(es) left behind", flush=True)
            self.kill_children()
        self.finalize(code)
        return 0 if code == 0 else (code if code > 0 else 128 - code)

    def finalize(self, code: int) -> None:
        status = self.rd.read_status()
        latest = _name(self.rd.latest_checkpoint())
        if status.get("state") in TERMINAL_STATES:
            self.rd.write_status(exit_code=code)
            return
        explained = _rank_error(self.rd) or explain_exit(code, self.rd.log_tail(300), latest_checkpoint=latest)
        explained.setdefault("log", relevant_lines(self.rd.log_tail(200)))
        self.rd.write_status(state="failed", exit_code=code, latest_checkpoint=latest,
                             message=explained["error"], **explained)


def _rank_error(rd: RunDir) -> dict | None:
    """The first error written by a non-zero rank (rank 0 writes status.json itself)."""
    if not rd.errors_dir.is_dir():
        return None
    for path in sorted(rd.errors_dir.glob("rank-*.json")):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
    return None


def _name(path) -> str | None:
    return path.name if path else None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m tunesmith.core.train.supervise RUN_DIR -- CMD...", file=sys.stderr)
        return 2
    return _Supervisor(RunDir(argv[0]), argv[2:]).run()


if __name__ == "__main__":
    raise SystemExit(main())
