"""Method tab: per-method defaults, which sections are shown, the memory estimate and "Fit to my GPU"."""

from __future__ import annotations

import functools
from html import escape

from tunesmith.app import commands
from tunesmith.app.callbacks.common import import_transformers_once, lang_of
from tunesmith.app.form import config_from_values, method_defaults, values_from_config
from tunesmith.app.locales import text
from tunesmith.app.registry import Update
from tunesmith.core.errors import UserError

DETECTED = "detected"
GPU_SIZES = (DETECTED, "8", "12", "16", "24", "40", "48", "80")
FALLBACK_GB = 8.0
PARTS = ("weights", "adapters", "gradients", "optimizer", "activations", "logits", "overhead")


@functools.lru_cache(maxsize=1)
def detected_gpu_gb() -> float | None:
    """Memory of GPU 0 in GiB, or None without a CUDA GPU (asked once; torch is imported there)."""
    from tunesmith.core.memory import detect_gpu_gb

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


TAB_OF = {"model": "tab/model", "data": "tab/data"}  # a field's section -> its tab, when not this one
WHY = {("qlora", "training.learning_rate"): "why_lr_xtuner", ("lora", "training.learning_rate"): "why_lr_xtuner",
       ("qlora", "model.gradient_checkpointing"): "why_ckpt_qlora"}


def _shown(value, lang: str) -> str:
    if isinstance(value, bool):
        return text("on" if value else "off", lang)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value not in (None, "") else "-"


def changes_html(changes: list[tuple[str, object, object]], choice: str, lang: str) -> str:
    """What the app changed for the user, said next to the choice that changed it (never silently).

    >>> html = changes_html([("training.learning_rate", 0.001, 0.0002)], "qlora", "en")
    >>> "<b>qlora</b> changed: Learning rate 0.001 → 0.0002 (XTuner" in html
    True
    """
    from tunesmith.app.locales import label

    if not changes:
        return ""
    items = []
    for elem_id, old, new in changes:
        item = text("change_item", lang, label=label(elem_id, lang), old=_shown(old, lang), new=_shown(new, lang))
        tab = TAB_OF.get(elem_id.split(".")[0])
        why = WHY.get((choice, elem_id))
        notes = [text(why, lang)] if why else []
        notes += [text("on_tab", lang, tab=label(tab, lang))] if tab else []
        items.append(item + (f" ({'; '.join(notes)})" if notes else ""))
    head = text("changed_by", lang, choice=choice)
    return (f'<div class="ts-change" data-changes="{len(changes)}"><b>{escape(choice)}</b> {escape(head)}: '
            f'{escape("; ".join(items))}</div>')


def on_method_change(values: dict, changed: str) -> dict:
    """The user picked a method or objective: apply its defaults, say which values that changed (where the
    choice was made), then update visibility."""
    choice = values.get(changed) or ""
    defaults = method_defaults(choice)
    changes = [(k, values.get(k), v) for k, v in defaults.items() if k in values and values.get(k) != v]
    return {**defaults, **visibility(values), "method/changes": changes_html(changes, choice, lang_of(values))}


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
    names = {k: text(f"mem_{k}", lang) for k in PARTS}
    bars = "".join(f'<div class="ts-mem-{k}" title="{escape(names[k])}: {_gb(breakdown.get(k, 0))}" '
                   f'style="width:{100 * breakdown.get(k, 0) / scale:.2f}%"></div>' for k in PARTS)
    rows = "".join(f'<tr><td title="{k}"><span class="ts-swatch ts-mem-{k}"></span>{escape(names[k])}</td>'
                   f'<td>{_gb(breakdown.get(k, 0))}</td></tr>' for k in PARTS)
    verdict = text("fits" if fits else "does_not_fit", lang, gb=f"{gpu_gb:g}")
    head = (f'<div class="ts-mem-head {"ts-ok" if fits else "ts-bad"}"><b>{_gb(total)}</b> · {escape(verdict)}</div>')
    line = f'<div class="ts-mem-cap" style="left:{100 * capacity / scale:.2f}%"></div>'
    notes = [note] if note else []
    notes += [engine_message(str(n), lang) for n in estimate.get("notes") or []]
    setup = (f'<div class="ts-muted">{escape(engine_message(str(estimate["setup"]), lang))}</div>'
             if estimate.get("setup") else "")
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
    from tunesmith.core.memory import estimate_memory

    cfg = config_from_values(values)
    gpu_gb, detected = gpu_gb_of(values)
    lang = lang_of(values)
    asked_detected = str(values.get("method/gpu_gb") or DETECTED) == DETECTED
    note = text("no_gpu", lang, gb=f"{gpu_gb:g}") if asked_detected and not detected else ""
    est = _estimate_dict(estimate_memory(cfg, gpu_gb=gpu_gb))
    return {"method/memory": memory_html(est, gpu_gb, lang, note),
            "method/cmd": commands.estimate_command(cfg, gpu_gb, base_preset(values))}


def base_preset(values: dict) -> str | None:
    """The preset the form was built on (the Model tab's choice), so the command line lists only the
    user's own changes: on the default preset, an applied 7B preset became a long --set list."""
    from tunesmith.core import paths

    name = str(values.get("model/preset") or "")
    return name if name and "/" not in name and (paths.presets_dir() / f"{name}.yaml").is_file() else None


@functools.lru_cache(maxsize=1)
def detected_gpu_count() -> int:
    """CUDA GPUs this app sees (0 without any)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # no usable torch/CUDA
        return 0


def plan_for_gpus(cfg, gpus: int, lang: str) -> list[str]:
    """"My GPU" means the GPUs here (or one): a preset's 8 GPUs and ZeRO-3 are not kept for a plan of
    one GPU, whose estimate would otherwise say "fits" for memory spread over GPUs that are not there.
    Changes ``cfg`` in place and says what it changed, in ``lang``."""
    from tunesmith.core.memory.fit import ZERO_ORDER

    dist, changes = cfg.distributed, []
    gpus = max(1, int(gpus))
    if dist.nproc_per_node * dist.nnodes != gpus:
        changes.append(text("fit_gpus", lang, old=dist.nproc_per_node * dist.nnodes, new=gpus))
        dist.nproc_per_node, dist.nnodes = gpus, 1
    stage = dist.deepspeed.replace("_offload", "")
    if gpus == 1 and stage in ZERO_ORDER and stage:  # ZeRO shards over GPUs: on one, it only costs time
        changes.append(text("fit_no_zero", lang, old=zero_name(dist.deepspeed, lang)))
        dist.deepspeed = ""
    return changes


def zero_name(deepspeed: str, lang: str) -> str:
    """``zero3_offload`` -> "ZeRO-3 + CPU offload"; "" -> "no DeepSpeed"; a JSON path stays a path.

    >>> zero_name("zero3_offload", "en"), zero_name("", "en")
    ('ZeRO-3 + CPU offload', 'no DeepSpeed')
    """
    if not deepspeed:
        return text("zero_none", lang)
    stage = deepspeed.replace("_offload", "")
    if stage.startswith("zero") and stage[4:].isdigit():
        return f"ZeRO-{stage[4:]}" + (text("zero_offload", lang) if deepspeed.endswith("_offload") else "")
    return deepspeed


def fit(values: dict) -> dict:
    """Plan for the GPUs detected (or one), then pick LoRA/QLoRA, batch size, checkpointing, max length so
    the estimate fits; the headline names the GPU count and ZeRO stage the plan is for."""
    import_transformers_once()
    from tunesmith.core.memory import estimate_memory, fit_to_gpu

    cfg = config_from_values(values)
    gpu_gb, _ = gpu_gb_of(values)
    lang = lang_of(values)
    planned = config_from_values(values)
    gpus = detected_gpu_count() or 1
    changes = plan_for_gpus(planned, gpus, lang)
    new_cfg, more = fit_to_gpu(planned, gpu_gb)
    changes += [engine_message(str(c), lang) for c in more]
    old, new = values_from_config(cfg), values_from_config(new_cfg)
    updates = {k: v for k, v in new.items() if old.get(k) != v}
    total = _estimate_dict(estimate_memory(new_cfg, gpu_gb=gpu_gb)).get("total") or 0
    plan = text("fit_plan", lang, gpus=new_cfg.world_size, gb=f"{gpu_gb:g}",
                zero=zero_name(new_cfg.distributed.deepspeed, lang), total=_gb(total))
    head = text("fit_changes_on" if changes else "fit_nothing_on", lang, plan=plan)
    items = "".join(f"<li>{escape(str(c))}</li>" for c in changes)
    notes = (f'<div class="ts-ok" data-gpus="{new_cfg.world_size}" data-zero="{escape(new_cfg.distributed.deepspeed)}">'
             f'<b>{escape(head)}</b>{f"<ul>{items}</ul>" if items else ""}</div>')
    merged = {**values, **updates}
    return {**updates, **visibility(merged), **estimate(merged), "method/status": notes}


def engine_message(message: str, lang: str) -> str:
    from tunesmith.app.engine_text import translate

    return translate(message, lang)
