"""Finding and ending the processes of a run (psutil; no torch).

A run lives in its own process group (the launcher starts it with ``start_new_session=True``), so
"every process of the run" means every live process whose process-group id is the run's pgid, plus
every descendant of its leader: torchrun starts each worker in a session of its own. The
supervisor makes itself a "child subreaper", so a worker orphaned by a crashed torchrun is
re-parented to it and stays findable; it also records the pids it has seen in status.json, for
when the supervisor itself is gone.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

SUPERVISOR_MODULE = "tunesmith.core.train.supervise"


def set_child_subreaper() -> bool:
    """Linux: orphaned descendants are re-parented to this process instead of init. False elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def snapshot(root_pid: int) -> list[list]:
    """[[pid, create_time], ...] of ``root_pid``'s live descendants (to find them again later)."""
    try:
        kids = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for proc in kids:
        try:
            out.append([proc.pid, round(proc.create_time(), 2)])
        except psutil.NoSuchProcess:
            continue
    return out


def recorded_processes(records: list | None) -> list[psutil.Process]:
    """Live processes among ``snapshot`` records (a reused pid with another start time is skipped)."""
    out = []
    for pid, created in records or []:
        try:
            proc = psutil.Process(int(pid))
            if abs(proc.create_time() - float(created)) <= 1.0 and _alive(proc):
                out.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, TypeError):
            continue
    return out


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError, OSError):
        return None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_processes(pgid: int | None, *, root_pid: int | None = None,
                    exclude_self: bool = True) -> list[psutil.Process]:
    """Live processes in process group ``pgid`` and the descendants of ``root_pid``."""
    found: dict[int, psutil.Process] = {}
    if pgid:
        for proc in psutil.process_iter(["pid"]):
            if _pgid(proc.pid) == pgid and _alive(proc):
                found[proc.pid] = proc
    if root_pid:
        try:
            root = psutil.Process(root_pid)
            for proc in [root, *root.children(recursive=True)]:
                if _alive(proc):
                    found[proc.pid] = proc
        except psutil.NoSuchProcess:
            pass
    if exclude_self:
        found.pop(os.getpid(), None)
    return list(found.values())


def process_matches(pid: int | None, create_time: float | None) -> bool:
    """True when ``pid`` is alive and is the process started at ``create_time`` (not a reused pid)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(int(pid))
        if create_time and abs(proc.create_time() - float(create_time)) > 1.0:
            return False
        return _alive(proc)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def _names_run(args: list[str], run_dir: Path) -> bool:
    """True when one of ``args`` is the path of ``run_dir``."""
    for arg in args:
        if arg and not arg.startswith("-"):
            try:
                if Path(arg).expanduser().resolve() == run_dir:
                    return True
            except (OSError, RuntimeError, ValueError):
                continue
    return False


def _same_start(proc: psutil.Process, created) -> bool:
    try:
        return created is not None and abs(proc.create_time() - float(created)) <= 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, TypeError, ValueError):
        return False


def verified_supervisor(run_dir, status: dict) -> psutil.Process | None:
    """The run's supervisor, only when it can be proven from the live process itself.

    status.json is a file anyone who can write the folder can fill in (``pid: 1`` would reach
    every process of the user), so its pid counts only when that live process started when the
    launcher recorded (``pid_create_time``), leads its own process group, and runs
    ``python -m tunesmith.core.train.supervise RUN_DIR -- ...`` for this very folder (and, when recorded at
    launch, has exactly the recorded command line)."""
    pid, created = status.get("pid"), status.get("pid_create_time")
    try:
        pid = int(pid)
        proc = psutil.Process(pid)
        if pid <= 1 or pid == os.getpid() or not _same_start(proc, created) or not _alive(proc):
            return None
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, TypeError, ValueError):
        return None
    run_dir = Path(run_dir).expanduser().resolve()
    try:
        at = cmdline.index(SUPERVISOR_MODULE)
    except ValueError:
        return None
    if at < 1 or cmdline[at - 1] != "-m" or len(cmdline) < at + 3 or cmdline[at + 2] != "--":
        return None
    if not _names_run([cmdline[at + 1]], run_dir) or _pgid(pid) != pid:
        return None
    recorded = status.get("pid_cmdline")
    if recorded is not None and list(recorded) != cmdline:
        return None
    return proc


def verified_run_processes(run_dir, status: dict) -> tuple[psutil.Process | None, list[psutil.Process]]:
    """(the proven supervisor or None, the other live processes provably of this run).

    With the supervisor alive, its process group and descendants are the run (torchrun workers in
    sessions of their own included, since it is their subreaper). Without it, a process recorded in
    status.json counts only when its start time matches the record and its command line names
    this run folder (``tunesmith.core.train.entry RUN_DIR``, torchrun's workers, srun)."""
    run_dir = Path(run_dir).expanduser().resolve()
    leader = verified_supervisor(run_dir, status)
    others = []
    for proc in recorded_processes(status.get("procs")):
        if leader is not None and proc.pid == leader.pid:
            continue
        try:
            if proc.pid > 1 and proc.pid != os.getpid() and _names_run(proc.cmdline(), run_dir):
                others.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return leader, others


def kill_run(run_dir, status: dict, *, sig: int = signal.SIGKILL, timeout: float = 10.0) -> list[int]:
    """Send ``sig`` to this run's processes, and only to processes proven to be this run's
    (:func:`verified_run_processes`); wait until they are gone. Returns the pids signalled."""
    leader, others = verified_run_processes(run_dir, status)
    if leader is None and not others:
        return []
    return kill_group(leader.pid if leader else None, root_pid=leader.pid if leader else None, sig=sig,
                      timeout=timeout, also=others)


def kill_group(pgid: int | None, *, root_pid: int | None = None, sig: int = signal.SIGKILL,
               timeout: float = 10.0, also: list[psutil.Process] | None = None) -> list[int]:
    """Send ``sig`` to the whole group, its leader's descendants and ``also``; wait until they are gone.

    Returns the pids signalled.
    """
    procs = group_processes(pgid, root_pid=root_pid)
    known = {p.pid for p in procs}
    procs += [p for p in also or [] if p.pid not in known and p.pid != os.getpid()]
    # pgid 1 (or 0) would reach every process this user may signal: never a run's group.
    if pgid and pgid > 1 and pgid != os.getpgrp():
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in procs:
        try:
            proc.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    deadline = time.monotonic() + timeout
    remaining = procs
    while remaining and time.monotonic() < deadline:
        _gone, remaining = psutil.wait_procs(remaining, timeout=0.2)
        remaining = [p for p in remaining if _alive(p)]
    return [p.pid for p in procs]
