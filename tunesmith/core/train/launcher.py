"""Start, find, watch and stop training runs (the API the GUI and the CLI call; no torch import).

A run is started as its own session/process group (``start_new_session=True``) with stdout/stderr
going to ``RUN_DIR/train.log``, so it keeps going when the GUI process dies or the browser closes.
The group leader is a tiny supervisor (tunesmith.core.train.supervise) that runs the trainer command
(python, torchrun or srun) and records how it ended.

>>> from tunesmith.core.train.launcher import launch, attach           # doctest: +SKIP
>>> handle = launch(cfg, "work_dirs/demo"); handle.status()["state"]   # doctest: +SKIP
'starting'
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tunesmith.core import preflight
from tunesmith.core.config import RunConfig
from tunesmith.core.errors import UserError
from tunesmith.core.paths import SOURCE_ROOT, child_env
from tunesmith.core.train import procs
from tunesmith.core.train.commands import build_command, display
from tunesmith.core.train.failures import explain_exit, relevant_lines
from tunesmith.core.train.rundir import ACTIVE_STATES, DEQUEUED_MESSAGE, QUEUED, TERMINAL_STATES, RunDir

__all__ = ["build_command", "launch", "run_here", "attach", "RunHandle", "list_runs", "default_run_dir", "prepare_run"]


def default_run_dir(cfg: RunConfig) -> Path:
    """``output.run_dir``, else ``work_dirs/<output.name or a name from model and data>`` (as XTuner)."""
    if cfg.output.run_dir:
        return Path(cfg.output.run_dir).expanduser().resolve()
    return (Path.cwd() / "work_dirs" / (cfg.output.name or cfg.default_name())).resolve()


class Killed(list):
    """The pids :meth:`RunHandle.kill` signalled; ``dequeued`` when the run was only queued (none)."""

    def __init__(self, pids=(), *, dequeued: bool = False):
        super().__init__(pids)
        self.dequeued = dequeued


class RunHandle:
    """A run started by this process (``popen`` set) or found on disk by :func:`attach`."""

    def __init__(self, run_dir: str | os.PathLike, pid: int | None = None, *, popen: subprocess.Popen | None = None,
                 create_time: float | None = None):
        self.rd = RunDir(run_dir)
        self.run_dir = self.rd.path
        self.pid = pid
        self._popen = popen
        self._create_time = create_time

    def __repr__(self) -> str:
        return f"RunHandle({str(self.run_dir)!r}, pid={self.pid})"

    # ---- state -------------------------------------------------------------------------------
    def is_alive(self) -> bool:
        """True while any process of the run lives (the supervisor, torchrun or a trainer rank)."""
        if self._popen is not None and self._popen.poll() is None:
            return True
        status = self.rd.read_status()
        if procs.process_matches(self.pid, self._create_time):
            return True
        pgid = status.get("pgid")
        if pgid and procs.group_processes(int(pgid)):
            return True
        if procs.recorded_processes(status.get("procs")):
            return True
        # The lock is held by the supervisor for the whole run: a live holder means a live run.
        return status.get("state") in ACTIVE_STATES and self.rd.is_locked()

    def status(self) -> dict:
        """status.json, corrected when the processes are gone but it still says the run is active."""
        status = self.rd.read_status()
        if status.get("state") in ACTIVE_STATES and not self.is_alive():
            code = self._popen.returncode if self._popen is not None else None
            latest = self.rd.latest_checkpoint()
            explained = explain_exit(code, self.rd.log_tail(300), latest_checkpoint=latest.name if latest else None)
            if code is None:
                explained["error"] = ("The training process is gone but never reported a result (it was killed or "
                                      "the machine restarted). " + explained["error"])
            status = self.rd.write_status(state="failed", message=explained["error"], exit_code=code,
                                          log=relevant_lines(self.rd.log_tail(200)),
                                          latest_checkpoint=latest.name if latest else None, **explained)
        return status

    @property
    def state(self) -> str:
        return self.status().get("state", "unknown")

    # ---- control -----------------------------------------------------------------------------
    def stop(self) -> str:
        """Ask for a graceful stop (checkpoint, then exit). Returns "stopping", "already stopping",
        "not running" or "dequeued" (a queued run taken off the queue). Asking again never kills: a double-click must not lose the work since the last
        checkpoint; ending the run at once is :meth:`kill`, an explicit, separate action."""
        status = self.rd.read_status()
        if status.get("state") == QUEUED:
            self.rd.write_status(state="stopped", message=DEQUEUED_MESSAGE)
            return "dequeued"
        if status.get("state") in TERMINAL_STATES or not self.is_alive():
            return "not running"
        if self.rd.request_stop():
            return "already stopping"
        self.rd.write_status(state="stopping", message="Stop requested: saving a checkpoint at the next step.")
        return "stopping"

    def kill(self) -> Killed:
        """End every process of the run at once (SIGKILL to the group and its descendants), and only
        processes proven to be this run's (procs.verified_run_processes): the pid in status.json alone
        proves nothing. Returns the pids signalled. Raises UserError when the recorded pid is alive but is
        not this run's trainer."""
        status = self.rd.read_status()
        if status.get("state") == QUEUED:  # nothing runs yet: nothing to kill, only the queue to leave
            self.rd.write_status(state="stopped", message=DEQUEUED_MESSAGE)
            return Killed(dequeued=True)
        leader, _others = procs.verified_run_processes(self.rd.path, status)
        if leader is None and procs.process_matches(status.get("pid"), None) and self.is_alive():
            raise UserError(f"refusing to signal pid {status.get('pid')}: it is not the trainer of {self.rd.path} "
                            "(its start time or command line do not match what the launcher recorded).",
                            "Nothing was signalled. If the run is really still going, end its processes yourself.")
        killed = Killed(procs.kill_run(self.rd.path, status))
        if self._popen is not None:
            try:
                self._popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.rd.read_status().get("state") not in TERMINAL_STATES:
            latest = self.rd.latest_checkpoint()
            note = f" The latest checkpoint is {latest.name}." if latest else " No checkpoint was saved."
            self.rd.write_status(state="stopped", message="Killed on request." + note, exit_code=-9,
                                 latest_checkpoint=latest.name if latest else None)
        return killed

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> dict:
        """Block until the run ends (or ``timeout`` seconds pass) and return its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_alive():
            if deadline is not None and time.monotonic() > deadline:
                break
            if self._popen is not None:
                try:
                    self._popen.wait(timeout=poll)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(poll)
        return self.status()


def prepare_run(cfg: RunConfig, run_dir: str | os.PathLike | None = None) -> tuple[RunConfig, RunDir, list[str]]:
    """Resolve the run folder and the resume checkpoint, and build the command (``cfg`` passed
    tunesmith.core.preflight.check already: launch() and run_here() check it first, the CLI's --print-command too).

    Raises UserError for anything the user must fix; writes nothing.
    """
    rd = RunDir(checked_run_dir(cfg, run_dir))
    cfg = RunConfig.from_dict(cfg.to_dict())  # a private copy we can fill in
    cfg.output.run_dir = str(rd.path)
    _absolute_paths(cfg)  # the trainer runs from the repository root, not from the caller's folder
    resume = cfg.training.resume_from
    if resume:
        cfg.training.resume_from = str(rd.resolve_checkpoint(resume))
    elif rd.list_checkpoints() and cfg.distributed.node_rank == 0:
        raise UserError(f"{rd.path} already holds checkpoints from an earlier run.",
                        "Resume it (--resume, or Resume in the GUI) or choose another run folder (--work-dir).")
    return cfg, rd, build_command(cfg, rd.path)


def checked_run_dir(cfg: RunConfig, run_dir: str | os.PathLike | None = None) -> Path:
    """The run folder, refused with a message (not FileExistsError from mkdir) when it cannot be one."""
    from tunesmith.core.preflight import run_dir_problem

    path = Path(run_dir).expanduser().resolve() if run_dir else default_run_dir(cfg)
    problem = run_dir_problem(path)
    if problem:
        raise problem
    return path


def _write_run_files(cfg: RunConfig, rd: RunDir, cmd: list[str], note: str) -> None:
    """config.yaml, command.txt and a fresh 'starting' status; clears leftovers of an earlier attempt."""
    rd.clear_stop()
    shutil.rmtree(rd.staging_dir, ignore_errors=True)
    shutil.rmtree(rd.errors_dir, ignore_errors=True)
    cfg.save(rd.config_path)
    rd.command_path.write_text(display(cmd) + "\n# " + note + "\n", encoding="utf-8")
    rd.status_path.unlink(missing_ok=True)
    rd.write_status(state="starting", message="Starting the trainer.", pid=None, pgid=None, step=0,
                    total_steps=None, error=None, advice=None, exit_code=None, started_at=time.time(),
                    run_dir=str(rd.path), resume_from=cfg.training.resume_from or None)


def _absolute_paths(cfg: RunConfig) -> None:
    """Relative paths that exist from the current folder become absolute (hub ids and presets stay)."""
    from tunesmith.core.config import DEEPSPEED_PRESETS
    from tunesmith.core.refs import is_embedded

    for section, name in (("model", "name_or_path"), ("data", "path"), ("distributed", "deepspeed")):
        obj = getattr(cfg, section)
        value = getattr(obj, name)
        if not value or is_embedded(value) or value in DEEPSPEED_PRESETS or os.path.isabs(value):
            continue
        path = Path(value).expanduser()
        if path.exists():
            setattr(obj, name, str(path.resolve()))


def control_dir(rd: RunDir, cfg: RunConfig) -> RunDir:
    """Where this machine's supervisor keeps its lock, log and status: the run folder itself on node 0,
    ``RUN_DIR/nodes/node-R`` on the other machines of a multi-node run (which share the run folder)."""
    rank = cfg.distributed.node_rank
    return rd if rank == 0 else RunDir(rd.path / "nodes" / f"node-{rank}")


def launch(cfg: RunConfig, run_dir: str | os.PathLike | None = None, *, checked: bool = False) -> RunHandle:
    """Write the run folder and start the trainer in its own process group; return at once.

    ``cfg`` goes through tunesmith.core.preflight.check first, unless the caller has just done that itself
    (``checked=True``: the CLI and the GUI's Start, which show the problems and warnings their own way).
    """
    if not checked:
        preflight.check(cfg)
    first = RunDir(checked_run_dir(cfg, run_dir))
    lock_fd = control_dir(first, cfg).acquire_lock()  # refuses a second run on one folder
    try:
        cfg, main_rd, cmd = prepare_run(cfg, run_dir)
        rd = control_dir(main_rd, cfg)
        if rd is not main_rd:
            cfg.save(main_rd.config_path)  # what every rank reads (the same file on every node)
        wrapper = supervised(rd, cmd)
        _write_run_files(cfg, rd, cmd, "started as: " + display(wrapper))
        # Where this machine's supervisor looks for the result: the trainer's node leader reports there.
        return spawn_supervised(rd, wrapper, lock_fd, display(cmd),
                                {"TUNESMITH_SUPERVISED": "1", "TUNESMITH_NODE_DIR": str(rd.path)})
    finally:
        os.close(lock_fd)  # the supervisor holds its own copy of the locked descriptor


def supervised(rd: RunDir, cmd: list[str]) -> list[str]:
    """``cmd`` under the supervisor that holds the folder's lock and writes its final status."""
    return [sys.executable, "-m", "tunesmith.core.train.supervise", str(rd.path), "--", *cmd]


def spawn_supervised(rd: RunDir, wrapper: list[str], lock_fd: int, title: str, env_extra: dict | None = None
                     ) -> RunHandle:
    """Start ``wrapper`` (from :func:`supervised`) in its own session, logging to the folder's log, and record
    the pid with what :func:`procs.verified_supervisor` checks before any signal: start time and command line.
    Training and evaluation both start this way, so Stop and Force stop treat them alike."""
    env = child_env(**(env_extra or {}))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with open(rd.log_path, "ab") as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {title}\n".encode())
        log.flush()
        popen = subprocess.Popen(wrapper, cwd=str(SOURCE_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(lock_fd,))
    create_time = None
    try:
        import psutil

        create_time = psutil.Process(popen.pid).create_time()
    except Exception:  # already gone: status() will tell
        pass
    rd.write_status(pid=popen.pid, pgid=popen.pid, pid_create_time=create_time, pid_cmdline=wrapper)
    return RunHandle(rd.path, popen.pid, popen=popen, create_time=create_time)


def run_here(cfg: RunConfig, run_dir: str | os.PathLike | None = None) -> dict:
    """Train in this process (tests, notebooks): same run folder and reporting, no subprocess. Returns status."""
    from tunesmith.core.train.entry import run

    preflight.check(cfg)
    rd0 = RunDir(checked_run_dir(cfg, run_dir))
    lock_fd = rd0.acquire_lock()
    try:
        cfg, rd, cmd = prepare_run(cfg, run_dir)
        _write_run_files(cfg, rd, cmd, f"run in-process by pid {os.getpid()}")
        rd.write_status(pid=os.getpid())
        run(str(rd.path), install_signals=False, take_lock=False)
    finally:
        os.close(lock_fd)
    return rd.read_status()


def attach(run_dir: str | os.PathLike) -> RunHandle:
    """A handle on a run started earlier, possibly by another process that is gone now."""
    rd = RunDir(run_dir)
    if not rd.exists():
        raise UserError(f"{rd.path} is not a run folder (no status.json or config.yaml).",
                        "Pick a folder made by a training run (see work_dirs/).")
    status = rd.read_status()
    pid = status.get("pid")
    return RunHandle(rd.path, int(pid) if pid else None, create_time=status.get("pid_create_time"))


def list_runs(root: str | os.PathLike) -> list[dict]:
    """Every run folder directly under ``root`` (newest first) with its corrected status."""
    root = Path(root).expanduser()
    runs = []
    if not root.is_dir():
        return runs
    for child in root.iterdir():
        if not child.is_dir() or not RunDir(child).exists():
            continue
        status = attach(child).status()
        latest = RunDir(child).latest_checkpoint()
        runs.append({"run_dir": str(child.resolve()), "name": child.name, "state": status.get("state", "unknown"),
                     "step": status.get("step"), "total_steps": status.get("total_steps"),
                     "message": status.get("message"), "updated_at": status.get("updated_at", 0),
                     "latest_checkpoint": str(latest) if latest else None})
    runs.sort(key=lambda r: r["updated_at"] or 0, reverse=True)
    return runs
