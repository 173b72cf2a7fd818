"""Does this adapter belong to that base model? Checked from file headers before any weight is loaded.

The name in ``adapter_config.json`` (``base_model_name_or_path``) is only a hint: paths move and
hub ids get mirrored. Module shapes are the reliable evidence: every LoRA pair must match the
in/out features of the base layer it wraps, and a saved embedding/head must match the vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.core.errors import UserError

PEFT_PREFIX = "base_model.model."


def adapter_shapes(adapter_dir: Path) -> dict[str, tuple]:
    """Tensor name -> shape of an adapter folder's weights (header only for safetensors)."""
    st = adapter_dir / "adapter_model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    binary = adapter_dir / "adapter_model.bin"
    if binary.is_file():
        import torch

        return {k: tuple(v.shape) for k, v in torch.load(str(binary), map_location="cpu", weights_only=True).items()}
    return {}


def _config(path: str | Path | None) -> dict | None:
    if not path:
        return None
    file = Path(path).expanduser() / "config.json"
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


ARCH_KEYS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size")


def shape_mismatches(adapter: dict[str, tuple], base: dict[str, tuple], *, fan_in_fan_out: bool = False) -> list[str]:
    """Human-readable mismatches between adapter tensors and base weights (both name -> shape).

    >>> shape_mismatches({"base_model.model.q.lora_A.weight": (8, 64), "base_model.model.q.lora_B.weight": (64, 8)},
    ...                  {"q.weight": (576, 576)})
    ['q: the base layer is 576 -> 576 features, the adapter expects 64 -> 64']
    """
    problems: list[str] = []
    modules: dict[str, dict] = {}
    for key, shape in adapter.items():
        name = key.removeprefix(PEFT_PREFIX)
        for part, slot in ((".lora_A.", "A"), (".lora_B.", "B"), (".lora_embedding_A", "EA"),
                           (".lora_embedding_B", "EB")):
            if part in name:
                modules.setdefault(name.split(part)[0], {})[slot] = shape
                break
        else:
            if not any(t in name for t in ("lora_", "magnitude")) and name in base and base[name] != shape:
                problems.append(f"{name}: the base has shape {tuple(base[name])}, the adapter {tuple(shape)}")
    for module, parts in sorted(modules.items()):
        weight = base.get(f"{module}.weight")
        if weight is None:
            problems.append(f"{module}: the adapter has LoRA weights for this layer but the base has no such layer")
            continue
        if "EA" in parts or "EB" in parts:  # embedding LoRA: A is (r, vocab), B is (dim, r)
            want = (parts.get("EA", (0, weight[0]))[1], parts.get("EB", (weight[1], 0))[0])
            if want != (weight[0], weight[1]):
                problems.append(f"{module}: the base embedding is {weight[0]} x {weight[1]}, "
                                f"the adapter expects {want[0]} x {want[1]}")
            continue
        if len(weight) != 2:
            continue  # convolutions etc.: leave them to PEFT
        out_f, in_f = (weight[1], weight[0]) if fan_in_fan_out else (weight[0], weight[1])
        a_in = parts["A"][-1] if "A" in parts and len(parts["A"]) == 2 else in_f
        b_out = parts["B"][0] if "B" in parts else out_f
        if (a_in, b_out) != (in_f, out_f):
            problems.append(f"{module}: the base layer is {in_f} -> {out_f} features, the adapter expects "
                            f"{a_in} -> {b_out}")
    return problems


def check_adapter_fits_base(adapter_dir: Path, adapter_config: dict, base_path: str, base_label: str = "") -> list[str]:
    """Raise a UserError naming the mismatch; return soft warnings (different name, same shapes)."""
    from tunesmith.core.export.weights import safetensors_shapes

    base_label = base_label or base_path
    trained_on = adapter_config.get("base_model_name_or_path") or "an unrecorded base model"
    fix = f"Pass the base model the adapter was trained on ({trained_on})."
    warnings: list[str] = []

    problems: list[str] = []
    base_shapes = safetensors_shapes(Path(base_path)) if Path(base_path).is_dir() else {}
    if base_shapes:
        problems = shape_mismatches(adapter_shapes(adapter_dir), base_shapes,
                                    fan_in_fan_out=bool(adapter_config.get("fan_in_fan_out")))
        if len(problems) > 2:
            problems = problems[:2] + [f"and {len(problems) - 2} more layers"]
    base_cfg, trained_cfg = _config(base_path), _config(adapter_config.get("base_model_name_or_path"))
    if base_cfg and trained_cfg:
        diffs = [f"{k} {trained_cfg.get(k)} vs {base_cfg.get(k)}" for k in ARCH_KEYS
                 if k in trained_cfg and k in base_cfg and trained_cfg[k] != base_cfg[k]]
        if diffs:
            problems.append(f"config.json differs ({'; '.join(diffs)}, trained vs given)")
    if problems:
        raise UserError(f"adapter {adapter_dir} does not fit base {base_label}: {'; '.join(problems)}. "
                        f"It was trained on {trained_on}.", fix)
    recorded = str(adapter_config.get("base_model_name_or_path") or "")
    if recorded and Path(recorded).name != Path(base_label).name and Path(recorded).name != Path(base_path).name:
        warnings.append(f"the adapter records base {recorded}, you gave {base_label}; the layer shapes match, "
                        "so merging goes ahead.")
    return warnings
