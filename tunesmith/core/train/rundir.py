"""The run directory: everything a GUI or a terminal needs to watch, stop and resume a run.

Layout (see docs/architecture.md)::

    RUN_DIR/config.yaml  command.txt  train.log  metrics.jsonl  samples.jsonl  status.json
    RUN_DIR/checkpoints/checkpoint-N/      complete checkpoints only (written elsewhere, then renamed)
    RUN_DIR/checkpoints/.staging/          checkpoints being written (never picked for resume)
    RUN_DIR/STOP                           a stop request
    RUN_DIR/.lock                          flock held by the run's process group while it lives

This module is light (no torch) so the GUI can import it at start-up. Only global rank 0 of the
trainer writes metrics/samples; status.json is also written by the launcher and the supervisor,
always atomically (temp file + rename) under a small lock so fields are merged, not lost.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from pathlib import Path

from tunesmith.core.errors import UserError
from tunesmith.core.files import atomic_write_text, file_lock

TERMINAL_STATES = ("finished", "stopped", "failed")
ACTIVE_STATES = ("starting", "running", "stopping")
# Written, with config.yaml, for a run that waits for the GPUs (the studio's queue decides when it starts);
# no process belongs to it yet, so it is neither active nor ended. Stopping it takes it off the queue.
QUEUED = "queued"
DEQUEUED_MESSAGE = "Removed from the queue before it started."
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
CHECKPOINT_NAME_RE = re.compile(r"^(?:checkpoint-)?\d+$")  # what --resume N / checkpoint-N look like
STAGING = ".staging"


class RunDirBusy(UserError):
    """Another live process holds the run directory's lock."""


class RunDir:
    """Paths and small helpers for one run directory.

    >>> rd = RunDir("/tmp/x")
    >>> rd.metrics_path.name, rd.checkpoints_dir.name
    ('metrics.jsonl', 'checkpoints')
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().resolve()
        self.config_path = self.path / "config.yaml"
        self.command_path = self.path / "command.txt"
        self.log_path = self.path / "train.log"
        self.metrics_path = self.path / "metrics.jsonl"
        self.samples_path = self.path / "samples.jsonl"
        self.status_path = self.path / "status.json"
        self.checkpoints_dir = self.path / "checkpoints"
        self.staging_dir = self.checkpoints_dir / STAGING
        self.stop_path = self.path / "STOP"
        self.lock_path = self.path / ".lock"
        self.errors_dir = self.path / ".errors"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def exists(self) -> bool:
        return self.status_path.exists() or self.config_path.exists()

    # ---- status.json ---------------------------------------------------------------------
    def read_status(self) -> dict:
        """The last written status (an empty dict when none was written yet)."""
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write_status(self, **fields) -> dict:
        """Merge ``fields`` into status.json atomically and return the new status."""
        self.path.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path / ".status.lock"):
            status = self.read_status()
            status.update(fields)
            status["updated_at"] = time.time()
            atomic_write_text(self.status_path, json.dumps(status, indent=1, default=str))
        return status

    def mark_queued(self, after: str = "") -> dict:
        """This folder's run waits to be launched (after ``after``, when named); see :data:`QUEUED`."""
        return self.write_status(state=QUEUED, queued_at=time.time(), pid=None,
                                 message=f"Waiting for {after} to end." if after else "Waiting for the GPUs.")

    # ---- metrics / samples ---------------------------------------------------------------
    def read_metrics(self, since_line: int = 0) -> list[dict]:
        """Records of metrics.jsonl from line ``since_line`` on (a half-written last line is skipped)."""
        return _read_jsonl(self.metrics_path, since_line)

    def read_samples(self, since_line: int = 0) -> list[dict]:
        return _read_jsonl(self.samples_path, since_line)

    def append_jsonl(self, path: Path, record: dict) -> None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=_json_default) + "\n")
            fh.flush()

    def truncate_metrics_after(self, step: int) -> None:
        """Drop metric/sample lines past ``step`` (used on resume so curves have no stale tail)."""
        for path in (self.metrics_path, self.samples_path):
            records = _read_jsonl(path, 0)
            kept = [r for r in records if int(r.get("step", 0) or 0) <= step]
            if len(kept) != len(records):
                atomic_write_text(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in kept))

    # ---- checkpoints ---------------------------------------------------------------------
    def list_checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (a folder counts once it holds trainer_state.json)."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for child in self.checkpoints_dir.iterdir():
            match = CHECKPOINT_RE.match(child.name)
            if match and child.is_dir() and (child / "trainer_state.json").is_file():
                found.append((int(match.group(1)), child))
        return [p for _, p in sorted(found)]

    def latest_checkpoint(self) -> Path | None:
        ckpts = self.list_checkpoints()
        return ckpts[-1] if ckpts else None

    def resolve_checkpoint(self, name: str) -> Path:
        """'latest', 'checkpoint-N', 'N' or a folder path -> a complete checkpoint folder."""
        if name in ("latest", "auto", "true", "True"):
            latest = self.latest_checkpoint()
            if latest is None:
                raise UserError(f"there is no complete checkpoint in {self.checkpoints_dir} to resume from.",
                                "Start the run without --resume, or point --work-dir at the run you want to continue.")
            return latest
        own = [self.checkpoints_dir / name, self.checkpoints_dir / f"checkpoint-{name}"]
        # "3" and "checkpoint-3" mean this run's checkpoint even when the current folder has one of that name.
        candidates = own + [Path(name).expanduser()] if CHECKPOINT_NAME_RE.match(name) else \
            [Path(name).expanduser(), *own]
        for cand in candidates:
            if cand.is_dir() and (cand / "trainer_state.json").is_file():
                return cand.resolve()
        names = ", ".join(p.name for p in self.list_checkpoints()) or "none"
        raise UserError(f"checkpoint '{name}' was not found or is incomplete (available: {names}).",
                        "Use --resume with no value for the latest, or one of the names listed.")

    # ---- stop request --------------------------------------------------------------------
    def request_stop(self) -> bool:
        """Create the STOP file; return True when it already existed (a second request)."""
        existed = self.stop_path.exists()
        self.stop_path.parent.mkdir(parents=True, exist_ok=True)
        self.stop_path.write_text(str(time.time()), encoding="utf-8")
        return existed

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def clear_stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.stop_path.unlink()

    # ---- logs ----------------------------------------------------------------------------
    def log_tail(self, lines: int = 40, max_bytes: int = 200_000) -> list[str]:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - max_bytes))
                text = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return text.splitlines()[-lines:]

    # ---- lock ----------------------------------------------------------------------------
    def acquire_lock(self) -> int:
        """Take the run's exclusive lock and return its file descriptor.

        flock locks die with the last process holding the descriptor, so a crashed run never
        keeps the directory locked. Raises :class:`RunDirBusy` when a live run holds it. A raw flock on
        purpose, not tunesmith.core.files.file_lock: the launcher passes this descriptor to the supervisor.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                pid = self.read_status().get("pid", "?")
                raise RunDirBusy(f"run directory {self.path} is in use by a running training (pid {pid}).",
                                 "Stop that run first, attach to it, or choose another --work-dir.") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def is_locked(self) -> bool:
        """True when a live process holds the lock (probing takes and drops it at once)."""
        if not self.lock_path.exists():
            return False
        fd = os.open(self.lock_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False


# ---- helpers ------------------------------------------------------------------------------

def _json_default(obj):
    try:
        return float(obj)
    except (TypeError, ValueError):
        return str(obj)


def _read_jsonl(path: Path, since_line: int) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines[since_line:]:
        if not line.endswith("\n"):
            break  # being written right now
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` and the folders themselves, so a rename after it is durable."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
