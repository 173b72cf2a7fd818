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

import psutil


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


def kill_group(pgid: int | None, *, root_pid: int | None = None, sig: int = signal.SIGKILL,
               timeout: float = 10.0, also: list[psutil.Process] | None = None) -> list[int]:
    """Send ``sig`` to the whole group, its leader's descendants and ``also``; wait until they are gone.

    Returns the pids signalled.
    """
    procs = group_processes(pgid, root_pid=root_pid)
    known = {p.pid for p in procs}
    procs += [p for p in also or [] if p.pid not in known and p.pid != os.getpid()]
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
