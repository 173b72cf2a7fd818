"""Finding and ending the processes of a run (psutil; no torch).

A run lives in its own process group (the launcher starts it with ``start_new_session=True``), so
"every process of the run" means every live process whose process-group id is the run's pgid, plus
any descendant that moved to another group (torchrun may start workers that way).
"""

from __future__ import annotations

import os
import signal
import time

import psutil


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


def group_processes(pgid: int | None, *, root_pid: int | None = None, exclude_self: bool = True) -> list[psutil.Process]:
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


def kill_group(pgid: int | None, *, root_pid: int | None = None, sig: int = signal.SIGKILL,
               timeout: float = 10.0) -> list[int]:
    """Send ``sig`` to the whole group and its descendants; wait until they are gone. Returns the pids hit."""
    procs = group_processes(pgid, root_pid=root_pid)
    if pgid and pgid != os.getpgrp():
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
