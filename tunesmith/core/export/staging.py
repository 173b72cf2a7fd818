"""Writing an output folder safely: refuse to clobber, stage in a hidden sibling, rename at the end.

A converted or merged model is written into ``.NAME.tunesmith-partial-PID`` next to the requested
folder and renamed into place only when every file is on disk, so a crash or a full disk never leaves
a folder that looks complete. Nothing the user had is touched until the new folder is ready.
"""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from tunesmith.core.errors import UserError

PARTIAL_TAG = ".tunesmith-partial-"


def check_output_dir(out_dir: str | os.PathLike, *, overwrite: bool, inputs: tuple = (), protect: tuple = ()) -> Path:
    """Validate the destination before any work starts; return it resolved.

    Refuses a non-empty folder without ``overwrite``, a path that is a file, a folder that is, holds or
    sits inside one of ``inputs`` (replacing it would destroy the model being read), and a folder that is
    or holds one of ``protect`` (writing inside a protected folder, e.g. a run directory, is fine).

    >>> check_output_dir("/tmp/some-new-folder-xyz", overwrite=False).name
    'some-new-folder-xyz'
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} is a file, not a folder.", "Give a folder path for the output.")
    for item in inputs:
        if not item:
            continue
        src = Path(item).expanduser().resolve()
        if out == src or out in src.parents or src in out.parents:
            raise UserError(f"output folder {out} overlaps the input {src}.",
                            "Write the result to a separate, new folder.")
    for item in protect:
        if item and (out == Path(item).resolve() or out in Path(item).resolve().parents):
            raise UserError(f"output folder {out} would replace {Path(item).resolve()}, which is an input.",
                            "Write the result to a separate, new folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"output folder {out} exists and is not empty.",
                        "Choose a new folder, or pass --overwrite to replace it.")
    return out


def check_free_space(out_dir: Path, needed_bytes: int) -> None:
    """Refuse early when the disk clearly cannot hold the result (10% margin)."""
    probe = out_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed_bytes * 1.1 > free:
        raise UserError(f"not enough disk space for {out_dir}: about {_gb(needed_bytes)} needed, "
                        f"{_gb(free)} free.", "Free some space, write to another disk, or use --dtype fp16/bf16.")


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def disk_full_error(exc: OSError, out_dir: Path) -> UserError:
    return UserError(f"the disk filled up while writing {out_dir} ({exc.strerror or exc}); "
                     "the partial files were removed and nothing was left at that path.",
                     "Free some disk space or choose a folder on another disk, then run again.")


@contextmanager
def staged_output(out_dir: Path):
    """Yield a temporary sibling folder; on success it replaces ``out_dir``, on failure it vanishes.

    An existing ``out_dir`` (allowed by ``overwrite``) is moved aside and deleted only after the new
    folder is in place.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}{PARTIAL_TAG}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.tunesmith-old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full_error(exc, out_dir) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(folder: Path) -> None:
    """Flush every file so the rename never publishes data still only in the page cache."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

