"""Turn whatever ended a run into plain words and concrete advice for status.json.

Used by the trainer (an exception it caught), by the supervisor (a process that died without
saying why) and by RunHandle/attach (a process that is gone while status.json still says running).
No torch import: exceptions are recognised by type name and message.
"""

from __future__ import annotations

import errno
import re
import signal

from tunesmith.core.errors import UserError

OOM_ADVICE = ("Use less memory: switch to QLoRA (4-bit base weights), lower training.batch_size (raise "
              "gradient_accumulation to keep the effective batch), turn on model.gradient_checkpointing, "
              "or shorten data.max_length.")
_OOM_PATTERNS = ("out of memory", "can't allocate memory", "cannot allocate memory", "defaultcpuallocator",
                 "outofmemoryerror")
_RELEVANT = re.compile(r"(error|exception|traceback|killed|failed|out of memory|no space|warning: .*deprecated)",
                       re.IGNORECASE)


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ in ("OutOfMemoryError", "OutOfMemory"):
        return True
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(p in text for p in _OOM_PATTERNS)


def missing_package(exc: BaseException) -> str | None:
    """The package an ImportError says is missing (its ``name`` or transformers' remote-code message).

    >>> missing_package(ImportError("This modeling file requires the following packages that were not found in "
    ...                             "your environment: einops, xyz. Run `pip install einops xyz`"))
    'einops, xyz'
    """
    if not isinstance(exc, ImportError):
        return None
    match = re.search(r"not found in your environment: ([\w\-., ]+?)\.(?:\s|$)", str(exc))
    if match:
        return match.group(1)
    if getattr(exc, "name", None):
        return exc.name
    match = re.search(r"No module named '([\w.]+)'", str(exc))
    return match.group(1) if match else None


def is_disk_full(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "no space left on device" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def relevant_lines(lines: list[str], limit: int = 25) -> list[str]:
    """The log lines worth showing: the last traceback/error block, else the last few lines.

    >>> relevant_lines(["step 1", "Traceback (most recent call last):", "  x", "ValueError: bad"])
    ['Traceback (most recent call last):', '  x', 'ValueError: bad']
    """
    start = None
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Traceback") or "Root Cause" in lines[i]:
            start = i
            break
    if start is not None:
        return lines[start:][-limit:]
    hits = [line for line in lines if _RELEVANT.search(line)]
    return (hits or lines)[-limit:]


def explain_exception(exc: BaseException, *, latest_checkpoint: str | None = None) -> dict:
    """Plain error + advice + kind for an exception raised inside the trainer."""
    keep = (f" The latest checkpoint ({latest_checkpoint}) is kept: resume from it after the change."
            if latest_checkpoint else "")
    if is_oom(exc):
        return {"kind": "oom", "error": f"Out of memory while training ({type(exc).__name__}: {_short(exc)}).",
                "advice": OOM_ADVICE + keep}
    if is_disk_full(exc):
        where = getattr(exc, "filename", None) or "the run folder"
        prev = (f" The previous checkpoint ({latest_checkpoint}) is intact." if latest_checkpoint
                else " No earlier checkpoint existed.")
        return {"kind": "disk_full", "error": f"The disk is full: writing {where} failed while saving a checkpoint."
                + prev, "advice": "Free disk space, lower training.save_total_limit, or put the run folder on a "
                                  "larger disk, then resume."}
    missing = missing_package(exc)
    if missing:
        name = missing
        return {"kind": "missing_package", "error": f"The Python package '{name}' is not installed ({_short(exc)}).",
                "advice": f"Install it into the app's environment (pip install {_pip_names(name)}), "
                          "or turn off the option that needs it."}
    if not isinstance(exc, UserError):
        from tunesmith.core.errors import needs_remote_code, remote_code_error

        if needs_remote_code(exc):  # transformers' ValueError names neither the setting nor where it lives
            exc = remote_code_error(exc=exc)
    if isinstance(exc, UserError):
        kind = "bad_data" if type(exc).__name__ == "DataError" else "bad_config"
        return {"kind": kind, "error": exc.message if not exc.field else f"{exc.field}: {exc.message}",
                "advice": exc.fix or ""}
    if isinstance(exc, KeyboardInterrupt):
        return {"kind": "interrupted", "error": "Interrupted.", "advice": "Resume from the latest checkpoint."}
    return {"kind": "crash", "error": f"Training crashed: {type(exc).__name__}: {_short(exc)}",
            "advice": "See the log lines below. If it looks like a bug, rerun with --debug and report it." + keep}


def explain_exit(returncode: int | None, log_lines: list[str], *, latest_checkpoint: str | None = None) -> dict:
    """Plain error for a trainer that ended without writing a final status."""
    keep = (f" Resume from the latest checkpoint ({latest_checkpoint})." if latest_checkpoint
            else " No checkpoint was saved yet.")
    text = "\n".join(log_lines[-200:])
    signum = None
    if returncode is not None and returncode < 0:
        signum = -returncode
    else:
        match = re.search(r"exitcode\s*:\s*-(\d+)", text) or re.search(r"Signal (\d+) \(SIG", text)
        if match:
            signum = int(match.group(1))
    if any(p in text.lower() for p in _OOM_PATTERNS):
        return {"kind": "oom", "error": "The trainer ran out of memory and stopped.", "advice": OOM_ADVICE + keep}
    if signum:
        name = _signal_name(signum)
        hint = (" This happens with `kill -9` or when the system's out-of-memory killer ends the process."
                if signum == signal.SIGKILL else "")
        return {"kind": "killed", "error": f"The trainer was killed by {name} before it finished.{hint}",
                "advice": ("If memory was short: " + OOM_ADVICE if signum == signal.SIGKILL else "") + keep}
    code = "an unknown code" if returncode is None else f"exit code {returncode}"
    return {"kind": "crash", "error": f"The trainer ended with {code} without reporting a result.",
            "advice": "See the log lines below." + keep}


def _pip_names(names: str) -> str:
    return " ".join(n.strip().split(".")[0] for n in names.split(",") if n.strip())


def _short(exc: BaseException, limit: int = 400) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if len(first) <= limit else first[:limit] + "..."


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
