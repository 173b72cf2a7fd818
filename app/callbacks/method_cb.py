"""Method tab: per-method defaults, which sections are shown, the memory estimate and "Fit to my GPU"."""

from __future__ import annotations

import functools
from html import escape

from app import commands
from app.callbacks.common import import_transformers_once, lang_of
from app.form import config_from_values, method_defaults, values_from_config
from app.locales import text
from app.registry import Update
from core.errors import UserError

DETECTED = "detected"
GPU_SIZES = (DETECTED, "8", "12", "16", "24", "40", "48", "80")
FALLBACK_GB = 8.0
PARTS = ("weights", "adapters", "gradients", "optimizer", "activations", "logits", "overhead")


@functools.lru_cache(maxsize=1)
def detected_gpu_gb() -> float | None:
    """Memory of GPU 0 in GiB, or None without a CUDA GPU (asked once; torch is imported there)."""
    from core.memory import detect_gpu_gb

    return detect_gpu_gb()


def gpu_gb_of(values: dict) -> tuple[float, bool]:
    """(GiB to plan against, whether it was detected)."""
    choice = str(values.get("method/gpu_gb") or DETECTED)
    if choice == DETECTED:
        found = detected_gpu_gb()
        return (found, True) if found else (FALLBACK_GB, False)
    try:
        gb = float(choice)
    except ValueError:
        raise UserError(f"GPU memory '{choice}' is not a number of GB.", "Pick a size such as 24.",
                        field="GPU memory") from None
    if gb <= 0:
        raise UserError("GPU memory must be more than 0 GB.", "Pick a size such as 24.", field="GPU memory")
    return gb, False


def visibility(values: dict) -> dict:
    """Show only the settings that apply to the chosen method."""
    finetuning = values.get("method.finetuning") or "lora"
    stage = values.get("method.stage") or "sft"
    return {"method/lora": Update(visible=finetuning in ("lora", "qlora")),
            "method/quant": Update(visible=finetuning == "qlora"),
            "method/pref": Update(visible=stage in ("dpo", "orpo"))}


def on_method_change(values: dict, changed: str) -> dict:
    """The user picked a method or objective: apply its defaults, then update visibility."""
    return {**method_defaults(values.get(changed) or ""), **visibility(values)}


def _gb(n: float) -> str:
    return f"{n / 2**30:.2f} GB"


def memory_html(estimate: dict, gpu_gb: float, lang: str, note: str = "") -> str:
    """Render ``MemoryEstimate.to_dict()`` (``breakdown``, ``total``, ``setup``, ``notes``).

    >>> html = memory_html({"breakdown": {"weights": 2**30}, "total": 2**30}, 8, "en")
    >>> 'data-fits="true"' in html and "1.00 GB" in html
    True
    """
    """A stacked bar of the breakdown against the GPU size, and the numbers in a table."""
    breakdown = estimate.get("breakdown", {})
    total = estimate.get("total") or sum(breakdown.values())
    capacity = gpu_gb * 2**30
    fits = total <= capacity
    scale = max(total, capacity) or 1
    bars = "".join(f'<div class="ts-mem-{k}" title="{k}: {_gb(breakdown.get(k, 0))}" '
                   f'style="width:{100 * breakdown.get(k, 0) / scale:.2f}%"></div>' for k in PARTS)
    rows = "".join(f'<tr><td><span class="ts-swatch ts-mem-{k}"></span>{k}</td><td>{_gb(breakdown.get(k, 0))}</td></tr>'
                   for k in PARTS)
    verdict = text("fits" if fits else "does_not_fit", lang, gb=f"{gpu_gb:g}")
    head = (f'<div class="ts-mem-head {"ts-ok" if fits else "ts-bad"}"><b>{_gb(total)}</b> · {escape(verdict)}</div>')
    line = f'<div class="ts-mem-cap" style="left:{100 * capacity / scale:.2f}%"></div>'
    notes = [note] if note else []
    notes += [str(n) for n in estimate.get("notes") or []]
    setup = f'<div class="ts-muted">{escape(str(estimate["setup"]))}</div>' if estimate.get("setup") else ""
    note_html = setup + "".join(f'<div class="ts-muted">· {escape(n)}</div>' for n in notes)
    return (f'<div class="ts-memory" data-total="{int(total)}" data-fits="{str(fits).lower()}">{head}'
            f'<div class="ts-mem-bar">{bars}{line}</div><table class="ts-table">{rows}</table>{note_html}</div>')


def _estimate_dict(est) -> dict:
    if hasattr(est, "to_dict"):
        return est.to_dict()
    return {"breakdown": dict(est.breakdown), "total": est.total}


def estimate(values: dict) -> dict:
    """Live GPU-memory estimate for the form's config."""
    import_transformers_once()
    from core.memory import estimate_memory

    cfg = config_from_values(values)
    gpu_gb, detected = gpu_gb_of(values)
    lang = lang_of(values)
    asked_detected = str(values.get("method/gpu_gb") or DETECTED) == DETECTED
    note = text("no_gpu", lang, gb=f"{gpu_gb:g}") if asked_detected and not detected else ""
    est = _estimate_dict(estimate_memory(cfg, gpu_gb=gpu_gb))
    return {"method/memory": memory_html(est, gpu_gb, lang, note),
            "method/cmd": commands.estimate_command(cfg, gpu_gb)}


def fit(values: dict) -> dict:
    """Pick QLoRA / batch size / gradient checkpointing / max length so the estimate fits the GPU."""
    import_transformers_once()
    from core.memory import fit_to_gpu

    cfg = config_from_values(values)
    gpu_gb, _ = gpu_gb_of(values)
    new_cfg, changes = fit_to_gpu(cfg, gpu_gb)
    lang = lang_of(values)
    old, new = values_from_config(cfg), values_from_config(new_cfg)
    updates = {k: v for k, v in new.items() if old.get(k) != v}
    if changes:
        items = "".join(f"<li>{escape(str(c))}</li>" for c in changes)
        notes = f'<div class="ts-ok"><b>{escape(text("fit_changes", lang, gb=f"{gpu_gb:g}"))}</b><ul>{items}</ul></div>'
    else:
        notes = f'<div class="ts-ok">{escape(text("fit_nothing", lang, gb=f"{gpu_gb:g}"))}</div>'
    merged = {**values, **updates}
    return {**updates, **visibility(merged), **estimate(merged), "method/status": notes}
