"""DeepSpeed configs: load a preset (presets/deepspeed/NAME.json) or a JSON file, fill "auto" values.

HF Trainer resolves most "auto" values itself, but its batch arithmetic uses the world size it
sees, which is wrong on CPU (see platform notes), and a user reading the run folder should see the
numbers that were really used. So the batch, clipping, precision and bucket-size values are written
out explicitly here; whatever is left "auto" (scheduler steps) HF fills in.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from tunesmith.core.config import DEEPSPEED_PRESETS, RunConfig
from tunesmith.core.errors import ConfigError
from tunesmith.core.paths import presets_dir


def preset_path(name: str) -> Path:
    return presets_dir() / "deepspeed" / f"{name}.json"


def load_deepspeed_config(name_or_path: str) -> dict:
    """A preset name (``zero2``, also XTuner's ``deepspeed_zero2``) or a JSON path -> dict."""
    name = name_or_path.removeprefix("deepspeed_")
    path = preset_path(name) if name in DEEPSPEED_PRESETS else Path(name_or_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"DeepSpeed config '{name_or_path}' was not found.",
                          f"Use one of {', '.join(DEEPSPEED_PRESETS)} or the path of a DeepSpeed JSON file.",
                          field="distributed.deepspeed")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}).",
                          "Fix the JSON or start from presets/deepspeed/zero2.json.",
                          field="distributed.deepspeed") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object.", "Start from presets/deepspeed/zero2.json.",
                          field="distributed.deepspeed")
    return data


ZERO_STAGES = (0, 1, 2, 3)
OFFLOAD_DEVICES = ("none", "cpu", "nvme")


def deepspeed_problems(name_or_path: str) -> list[ConfigError]:
    """What DeepSpeed would refuse in a user's JSON, found before launch (no deepspeed/torch import).

    DeepSpeed checks its config only once the model is loaded and wrapped, minutes into a run, and
    then shows a pydantic traceback; these are the mistakes that are easy to make by hand.

    >>> import json, tempfile
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    >>> _ = f.write(json.dumps({"zero_optimization": {"stage": 7}})); f.close()
    >>> print(deepspeed_problems(f.name)[0].message)  # doctest: +ELLIPSIS
    zero_optimization.stage is 7 in ...; DeepSpeed's ZeRO stages are 0, 1, 2 and 3.
    """
    where = "distributed.deepspeed"
    try:
        ds = load_deepspeed_config(name_or_path)
    except ConfigError as exc:
        return [exc]
    path = name_or_path
    found = []

    def bad(message: str, fix: str) -> None:
        found.append(ConfigError(message, fix, field=where))

    zero = ds.get("zero_optimization") or {}
    if not isinstance(zero, dict):
        bad(f"zero_optimization must be a JSON object in {path}, got {json.dumps(zero)}.",
            'Write it as "zero_optimization": {"stage": 2}, or start from presets/deepspeed/zero2.json.')
        zero = {}
    stage = zero.get("stage", 0)
    if isinstance(stage, bool) or stage not in ZERO_STAGES:
        bad(f"zero_optimization.stage is {json.dumps(stage)} in {path}; DeepSpeed's ZeRO stages are 0, 1, 2 and 3.",
            "Set zero_optimization.stage to 0, 1, 2 or 3, or use a preset (zero2, zero3).")
    for key in ("offload_optimizer", "offload_param"):
        offload = zero.get(key)
        if offload is None:
            continue
        device = offload.get("device", "none") if isinstance(offload, dict) else None
        if device not in OFFLOAD_DEVICES:
            bad(f"zero_optimization.{key} must be an object with device none, cpu or nvme in {path}, "
                f"got {json.dumps(offload)}.", f'Write it as "{key}": {{"device": "cpu"}}, or use zero3_offload.')
        elif key == "offload_param" and device != "none" and stage != 3:
            bad(f"zero_optimization.offload_param needs stage 3 in {path} (stage is {json.dumps(stage)}).",
                "Set stage 3, or move the offload to offload_optimizer.")
    clip = ds.get("gradient_clipping", "auto")
    if clip != "auto" and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip < 0):
        bad(f"gradient_clipping must be a number >= 0 or \"auto\" in {path}, got {json.dumps(clip)}.",
            'Write "gradient_clipping": "auto" (it follows training.max_grad_norm).')
    for key in ("fp16", "bf16"):
        section = ds.get(key, {})
        if not isinstance(section, dict):
            bad(f"{key} must be a JSON object in {path}, got {json.dumps(section)}.",
                f'Write it as "{key}": {{"enabled": "auto"}}.')
    optimizer = ds.get("optimizer") or {}
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("params", {}), dict):
        bad(f"optimizer must be an object with a params object in {path}, got {json.dumps(optimizer)}.",
            'Leave "optimizer" out (training.optimizer is used) or write {"type": "AdamW", "params": {"lr": "auto"}}.')
    return found


def zero_stage(ds: dict) -> int:
    return int((ds.get("zero_optimization") or {}).get("stage", 0) or 0)


def fill_auto(ds: dict, cfg: RunConfig, *, world_size: int, precision: str, hidden_size: int | None = None) -> dict:
    """Return a copy of ``ds`` with the batch/precision/clipping/bucket "auto" values made explicit.

    >>> ds = {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
    ...       "bf16": {"enabled": "auto"}, "zero_optimization": {"stage": 2, "reduce_bucket_size": "auto"}}
    >>> cfg = RunConfig(); cfg.training.batch_size, cfg.training.gradient_accumulation = 2, 4
    >>> out = fill_auto(ds, cfg, world_size=2, precision="bf16", hidden_size=64)
    >>> out["train_batch_size"], out["bf16"]["enabled"], out["zero_optimization"]["reduce_bucket_size"]
    (16, True, 4096)
    """
    t = cfg.training
    out = copy.deepcopy(ds)
    micro, accum = t.batch_size, t.gradient_accumulation
    out["train_micro_batch_size_per_gpu"] = micro
    out["gradient_accumulation_steps"] = accum
    out["train_batch_size"] = micro * accum * world_size
    if out.get("gradient_clipping", "auto") == "auto":
        out["gradient_clipping"] = t.max_grad_norm
    for key, wanted in (("fp16", precision == "fp16"), ("bf16", precision == "bf16")):
        section = out.setdefault(key, {})
        if section.get("enabled", "auto") == "auto":
            section["enabled"] = wanted
    zero = out.get("zero_optimization") or {}
    sizes = {}
    if hidden_size:
        sizes = {"reduce_bucket_size": hidden_size * hidden_size,
                 "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
                 "stage3_param_persistence_threshold": 10 * hidden_size}
    for key in ("reduce_bucket_size", "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold"):
        if zero.get(key) == "auto":
            if key in sizes:
                zero[key] = sizes[key]
            else:
                del zero[key]  # DeepSpeed's own default
    opt = (out.get("optimizer") or {}).get("params")
    if isinstance(opt, dict):
        defaults = {"lr": t.learning_rate, "weight_decay": t.weight_decay, "betas": [0.9, 0.999], "eps": 1e-8}
        for key, value in defaults.items():
            if opt.get(key) == "auto":
                opt[key] = value
    return out
