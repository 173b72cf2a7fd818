"""HTML for the Train tab: the progress bar with ETA, a failure explained, eval-chat answers.

>>> fmt_seconds(3725), fmt_seconds(None)
('1:02:05', '?')
"""

from __future__ import annotations

import re
from html import escape

from tunesmith.app.locales import text

STATE_CLASS = {"starting": "run", "running": "run", "stopping": "run", "queued": "run",
               "finished": "ok", "stopped": "warn", "failed": "bad"}


def fmt_seconds(seconds) -> str:
    if seconds is None:
        return "?"
    try:
        seconds = int(round(float(seconds)))
    except (TypeError, ValueError):
        return "?"
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_fraction(status: dict, last: dict | None) -> float:
    """How far the run is, 0..1, from the latest metrics line (else status.json).

    >>> progress_fraction({"state": "running"}, {"step": 5, "total_steps": 20})
    0.25
    >>> progress_fraction({"state": "finished"}, None)
    1.0
    """
    if status.get("state") == "finished":
        return 1.0
    last = last or {}
    step = last.get("step", status.get("step")) or 0
    total = last.get("total_steps", status.get("total_steps")) or 0
    try:
        return max(0.0, min(1.0, float(step) / float(total))) if total else 0.0
    except (TypeError, ValueError):
        return 0.0


ACTIVE = ("starting", "running", "stopping")


def run_elapsed(status: dict, now: float | None = None) -> float | None:
    """Seconds since Start, over every attempt of the run (Resume goes on from the earlier total).

    >>> run_elapsed({"state": "running", "started_at": 100.0, "elapsed_prior_s": 40}, now=130.0)
    70.0
    >>> run_elapsed({"state": "finished", "started_at": 100.0, "elapsed_total_s": 95.5}, now=999.0)
    95.5
    """
    import time

    if status.get("state") not in ACTIVE and isinstance(status.get("elapsed_total_s"), (int, float)):
        return float(status["elapsed_total_s"])
    started = status.get("started_at")
    if not isinstance(started, (int, float)):
        return None
    end = (now or time.time()) if status.get("state") in ACTIVE else status.get("updated_at") or now or time.time()
    return max(0.0, float(status.get("elapsed_prior_s") or 0.0) + float(end) - float(started))


def phase_text(status: dict, lang: str) -> tuple[str, float | None]:
    """What the trainer says it is doing (its ``phase`` in status.json), in ``lang``, and that phase's
    own progress 0..1 (None when it cannot be counted). Empty outside an active run."""
    state = status.get("state")
    if state not in ACTIVE:
        return "", None
    phase = status.get("phase") or ("starting" if state == "starting" else "")
    if not phase or phase == "training":
        return "", None
    done, total = status.get("phase_done"), status.get("phase_total")
    counted = isinstance(done, int) and isinstance(total, int) and total > 0
    key = f"phase_{phase}" if phase != "tokenizing" or isinstance(total, int) else "phase_tokenizing_any"
    shown = text(key, lang, done=done if counted else "?", total=total if total is not None else "?",
                 step=status.get("phase_step", status.get("step", "?")))
    return shown, (max(0.0, min(1.0, done / total)) if counted else None)


def progress_html(status: dict, last: dict | None, lang: str, run_name: str = "", now: float | None = None) -> str:
    """A bar with the state, step/total, elapsed time since Start and (while training) the ETA; before
    the first step and after the last, the trainer's phase with a bar of its own."""
    state = status.get("state") or "unknown"
    frac = progress_fraction(status, last)
    last = last or {}
    step = last.get("step", status.get("step")) or 0
    if isinstance(status.get("step"), int) and status.get("step") > step:
        step = status["step"]  # status.json is written every second, metrics only at logging steps
    total = last.get("total_steps", status.get("total_steps")) or "?"
    elapsed = fmt_seconds(run_elapsed(status, now))
    phase, phase_frac = phase_text(status, lang)
    eta = last.get("eta_s")
    if state == "running" and not phase and eta is not None:
        detail = text("eta", lang, step=step, total=total, elapsed=elapsed, eta=fmt_seconds(eta))
    else:  # not training (yet / any more): no "about 0:00 left"
        detail = text("eta_none", lang, step=step, total=total, elapsed=elapsed)
    label = text(f"state_{state}", lang) if state in STATE_CLASS else state
    message = "" if state in ("failed",) or phase else engine_message(status.get("message") or "", lang)
    cls = STATE_CLASS.get(state, "run")
    phase_html = ""
    if phase:
        width = f"{phase_frac * 100:.1f}%" if phase_frac is not None else "100%"
        busy = "" if phase_frac is not None else " ts-indeterminate"
        phase_html = (f'<div class="ts-phase" data-phase="{escape(str(status.get("phase") or state))}">'
                      f'{escape(phase)}<div class="ts-bar ts-phase-bar{busy}"><div class="ts-fill" '
                      f'style="width:{width}"></div></div></div>')
    return (f'<div class="ts-progress ts-{cls}" data-state="{escape(state)}" data-frac="{frac:.4f}">'
            f'<div class="ts-progress-head"><b>{escape(label)}</b> {escape(run_name)} · {escape(detail)}</div>'
            f'<div class="ts-bar"><div class="ts-fill" style="width:{frac * 100:.1f}%"></div></div>'
            f'{phase_html}<div class="ts-progress-msg">{escape(str(message))}</div></div>')


def engine_message(message: str, lang: str) -> str:
    """A message the engine wrote (status.json, errors) in ``lang``: see :mod:`tunesmith.app.engine_text`."""
    from tunesmith.app.engine_text import translate

    return translate(message, lang)


def failure_html(status: dict, log_lines: list[str], lang: str) -> str:
    """A failed run in plain words: the error, what to try, and the log lines that matter."""
    if status.get("state") != "failed":
        return ""
    error = status.get("error") or status.get("message") or "The run failed."
    advice = status.get("advice") or ""
    lines = status.get("log") or log_lines
    if isinstance(lines, str):
        lines = lines.splitlines()
    advice_html = (f'<div class="ts-advice"><b>{escape(text("advice", lang))}:</b> {escape(advice)}</div>'
                   if advice else "")
    log_html = (f'<details open><summary>{escape(text("log_lines", lang))}</summary>'
                f'<pre class="ts-loglines">{escape(chr(10).join(lines[-25:]))}</pre></details>') if lines else ""
    return f'<div class="ts-error ts-failure"><b>{escape(str(error))}</b>{advice_html}{log_html}</div>'


# Lines a CPU or LoRA run prints that say nothing about this run (train.log keeps them all).
LOG_NOISE = (
    re.compile(r"Failed to load CPU gemm_4bit_forward|No module named 'kernels'|pip install kernels"),
    re.compile(r"\bFutureWarning\b|\bDeprecationWarning\b"),
    re.compile(r"^\s*warnings\.warn\("),
    re.compile(r"Setting accelerator to CPU"),
    re.compile(r"\d+/\d+ \[[0-9:<?]+.*(it/s|s/it|examples/s)\]"),  # progress bars (tqdm)
    re.compile(r"^(Generating \w+ split|Map|Filter|Converting and de-quantizing|Loading weights|Writing model "
               r"shards)\b.*\d+%"),
)
# A line like these is never hidden, whatever else it matches.
LOG_KEEP = re.compile(r"Traceback|Error\b|error:|Exception|Killed|out of memory|\[tunesmith\]", re.I)


def useful_log_lines(lines: list[str]) -> tuple[list[str], int]:
    """The log lines worth a user's eye and how many were left out: known noise goes (kernel-package
    hints, FutureWarnings with their ``warnings.warn(`` line, progress bars); errors, tracebacks (from
    the first ``Traceback`` on) and Tunesmith's own lines always stay.

    >>> useful_log_lines(["Failed to load CPU gemm_4bit_forward from kernels-community: No module named "
    ...                   "'kernels'", "x.py:1: FutureWarning: old", "  warnings.warn(", "[tunesmith] step 1/2",
    ...                   "Traceback (most recent call last):", "  warnings.warn(", "ValueError: bad"])
    (['[tunesmith] step 1/2', 'Traceback (most recent call last):', '  warnings.warn(', 'ValueError: bad'], 3)
    """
    kept, hidden, in_trace = [], 0, False
    for line in lines:
        in_trace = in_trace or line.startswith("Traceback")
        if not in_trace and not LOG_KEEP.search(line) and any(p.search(line) for p in LOG_NOISE):
            hidden += 1
            continue
        kept.append(line)
    return kept, hidden


def log_html(lines: list[str], title: str = "train.log") -> str:
    r"""The log tail in a box that stays scrolled to its newest line (column-reverse keeps the bottom).

    >>> log_html(["a", "<b>"])
    '<div class="ts-log-title">train.log</div><div class="ts-log"><pre>a\n&lt;b&gt;</pre></div>'
    """
    body = escape("\n".join(lines))
    return f'<div class="ts-log-title">{escape(title)}</div><div class="ts-log"><pre>{body}</pre></div>'


def samples_html(rows: list[dict], limit_steps: int = 6, lang: str = "en") -> str:
    """Eval-chat answers grouped by step, newest step first ("before" for step 0 of a fresh run)."""
    by_step: dict = {}
    for row in rows:
        by_step.setdefault(row.get("step", "?"), []).append(row)
    blocks = []
    for step in sorted(by_step, key=lambda s: s if isinstance(s, (int, float)) else -1, reverse=True)[:limit_steps]:
        items = "".join(f'<div class="ts-qa"><div class="ts-q">{escape(str(r.get("prompt", "")))}</div>'
                        f'<div class="ts-a">{escape(str(r.get("answer", "")))}</div></div>' for r in by_step[step])
        before = step == 0 and any(r.get("when") == "before" for r in by_step[step])
        head = f'<div class="ts-sample-head">{escape(text("samples_before" if before else "samples_step", lang, step=step))}</div>'
        blocks.append(f'<div class="ts-sample-step">{head}{items}</div>')
    return "".join(blocks) or '<div class="ts-muted">-</div>'


def run_choice(run: dict, lang: str = "en") -> tuple[str, str]:
    """A drop-down entry ``(label, run_dir)`` for one run from ``list_runs``, its state in ``lang``.

    >>> run_choice({"name": "r1", "state": "running", "step": 3, "total_steps": 10, "run_dir": "/x/r1"})
    ('r1 · running · 3/10', '/x/r1')
    >>> run_choice({"name": "r1", "state": "finished", "run_dir": "/x/r1"}, "zh")
    ('r1 · 已完成', '/x/r1')
    """
    step, total = run.get("step"), run.get("total_steps")
    where = f" · {step}/{total}" if step is not None and total else ""
    state = run.get("state")
    shown = text(f"list_{state}", lang) if state in STATE_CLASS else state
    return f"{run.get('name')} · {shown}{where}", run["run_dir"]
