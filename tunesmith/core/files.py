"""Small file helpers shared by the engine: atomic writes and short inter-process locks.

* :func:`atomic_write_text`: readers see the old or the new file, never half of one (temp file in the
  same folder + ``os.replace``). ``fsync=False`` by default: status, metrics and configs are rewritten
  often, and after a power cut an older copy is fine (checkpoints are fsynced by tunesmith.core.train.rundir).
* :func:`file_lock`: a short critical section between processes and threads (``filelock.FileLock``),
  e.g. the read-merge-write of status.json or the one-time import of the embedded model.

The run lock (``RUN_DIR/.lock``) is deliberately *not* one of these: it is a raw ``flock`` whose
descriptor the launcher hands to the supervisor (``pass_fds``), so the lock lives exactly as long as
the run's processes and the kernel drops it when the last one dies, however it dies
(tunesmith.core.train.rundir.RunDir.acquire_lock). A FileLock object belongs to one process and cannot be
inherited that way.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` to ``path`` so that a reader never sees a torn file; returns the path.

    >>> import tempfile
    >>> p = atomic_write_text(Path(tempfile.mkdtemp()) / "a" / "x.txt", "hello")
    >>> p.read_text(), sorted(q.name for q in p.parent.iterdir())
    ('hello', ['x.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float = -1):
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block.

    ``timeout`` seconds (-1: wait for ever); filelock.Timeout when it passes. Released by the OS if the
    process dies inside the block.
    """
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path), timeout=timeout):
        yield
