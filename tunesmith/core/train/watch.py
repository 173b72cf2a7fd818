"""Follow a run from a terminal: progress lines from metrics/samples/status, Ctrl-C to stop (no torch)."""

from __future__ import annotations

import sys
import time

from tunesmith.core.train.rundir import TERMINAL_STATES, RunDir

USER_ERROR_KINDS = ("bad_data", "bad_config")  # failures whose message already says what to change


def format_metric(r: dict) -> str:
    """One terminal line for a metrics.jsonl record.

    >>> format_metric({"kind": "eval", "step": 5, "total_steps": 10, "eval_loss": 1.5})
    'step 5/10  eval_loss 1.5000'
    """
    head = f"step {r.get('step')}/{r.get('total_steps')}"
    if r.get("kind") == "eval":
        return f"{head}  eval_loss {r['eval_loss']:.4f}"
    parts = [head, f"loss {r['loss']:.4f}" if r.get("loss") is not None else "loss -"]
    if r.get("learning_rate") is not None:
        parts.append(f"lr {r['learning_rate']:.2e}")
    if r.get("tokens_per_s") is not None:
        parts.append(f"{r['tokens_per_s']:.0f} tok/s")
    if r.get("peak_mem_mb") is not None:
        parts.append(f"{r.get('mem_kind', 'mem')} {r['peak_mem_mb']:.0f} MB")
    if r.get("eta_s") is not None:
        parts.append(f"eta {_duration(r['eta_s'])}")
    return "  ".join(parts)


def describe(rd: RunDir, status: dict) -> str:
    """A short multi-line summary of a run for `python -m tunesmith status`."""
    lines = [f"run:     {rd.path}", f"state:   {status.get('state', 'unknown')}"]
    if status.get("total_steps"):
        lines.append(f"step:    {status.get('step', 0)}/{status['total_steps']}")
    if status.get("message"):
        lines.append(f"message: {status['message']}")
    if status.get("state") == "failed":
        if status.get("advice"):
            lines.append(f"advice:  {status['advice']}")
        for line in status.get("log") or []:
            lines.append(f"  | {line}")
    latest = rd.latest_checkpoint()
    lines.append(f"latest checkpoint: {latest if latest else '-'}")
    metrics = [m for m in rd.read_metrics() if m.get("kind", "train") == "train"]
    if metrics:
        lines.append("last:    " + format_metric(metrics[-1]))
    return "\n".join(lines)


def follow(handle, out=None, poll: float = 1.0) -> dict:
    """Print progress until the run ends. Ctrl-C asks for a stop; a second Ctrl-C kills the run."""
    out = out or sys.stdout
    rd = handle.rd
    seen_metrics = seen_samples = 0
    last_message = None
    interrupts = 0
    while True:
        try:
            status = handle.status()
            message = status.get("message")
            if message and message != last_message:
                print(f"[{status.get('state')}] {message}", file=out, flush=True)
                last_message = message
            metrics = rd.read_metrics(seen_metrics)
            seen_metrics += len(metrics)
            for record in metrics:
                print(format_metric(record), file=out, flush=True)
            samples = rd.read_samples(seen_samples)
            seen_samples += len(samples)
            for record in samples:
                print(f"  sample @{record['step']}: {record['prompt']!r} -> {record['answer'][:160]!r}", file=out,
                      flush=True)
            if status.get("state") in TERMINAL_STATES and not handle.is_alive():
                break
            time.sleep(poll)
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts == 1:
                print("\nstopping: saving a checkpoint at the next step (Ctrl-C again to kill)", file=out, flush=True)
                handle.stop()
            else:
                print("\nkilling the run", file=out, flush=True)
                handle.kill()
    status = handle.status()
    if status.get("state") == "failed":
        print(f"error: {status.get('error') or status.get('message')}", file=sys.stderr, flush=True)
        if status.get("advice"):
            print(f"advice: {status['advice']}", file=sys.stderr, flush=True)
        if status.get("kind") not in USER_ERROR_KINDS:  # a user error's log lines are only its traceback
            for line in status.get("log") or []:
                print(f"  | {line}", file=sys.stderr)
        print(f"full log: {rd.log_path}", file=sys.stderr, flush=True)
    elif status.get("message") != last_message:
        print(f"[{status.get('state')}] {status.get('message', '')}", file=out, flush=True)
    return status


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
