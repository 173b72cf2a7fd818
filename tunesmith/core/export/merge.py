"""``convert merge``: fold a LoRA/QLoRA adapter into its base model's weights.

The base loads in the requested dtype straight onto the target device (never 4-bit: QLoRA adapters
merge into the de-quantised base), PEFT's ``merge_and_unload`` folds the low-rank update in place, and
the result is saved in shards, so peak memory stays near one copy of the model.
"""

from __future__ import annotations

import os
from pathlib import Path

from tunesmith.core.errors import UserError, missing_model_error
from tunesmith.core.export import extras
from tunesmith.core.export.compat import check_adapter_fits_base
from tunesmith.core.export.convert import parse_shard_size
from tunesmith.core.export.progress import Progress, ProgressFn
from tunesmith.core.export.source import CheckpointInfo, inspect_checkpoint, read_adapter_config
from tunesmith.core.export.staging import check_free_space, check_output_dir, staged_output
from tunesmith.core.export.weights import adapter_tensors, numel, safetensors_shapes, save_model_folder, torch_dtype

DEVICES = ("cpu", "cuda", "auto")


def _device_map(device: str) -> str:
    import torch

    if device not in DEVICES:
        from tunesmith.core.errors import close_matches

        raise UserError(f"unknown device '{device}'.", close_matches(device, DEVICES))
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available.", "Use --device cpu (the default).")
    return device


def resolve_base(base: str) -> str:
    """``embedded:...``, a local folder with config.json, or a hub id (needs the hub cache offline)."""
    from tunesmith.core.refs import looks_like_hub_id, resolve_model_path

    if not base:
        raise UserError("no base model given.", "Give the base model folder the adapter was trained on.")
    path = resolve_model_path(base)
    local = Path(path)
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"base model folder {local} has no config.json.",
                            "Point at the folder that holds config.json and the weights.")
        return str(local.resolve())
    if not looks_like_hub_id(base):
        raise missing_model_error(base, "base model")
    return path


def _adapter_info(adapter: str | os.PathLike) -> CheckpointInfo:
    path = Path(adapter).expanduser()
    if path.is_dir() and not (path / "adapter_config.json").is_file() and not (path / "checkpoints").is_dir():
        read_adapter_config(path)  # raises the "missing adapter_config.json" message
    info = inspect_checkpoint(path)
    if info.kind != "adapter":
        raise UserError(f"{info.path} is a full model, not a LoRA adapter; there is nothing to merge.",
                        "Use `convert to-hf` for full fine-tunes, or give a LoRA/QLoRA run.")
    return info


def merge_adapter(base: str, adapter: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str = "fp16",
                  max_shard_size: str = "2GB", device: str = "cpu", safe: bool = True, overwrite: bool = False,
                  template: str | None = None, progress: ProgressFn | None = None) -> Path:
    """Merge ``adapter`` (adapter folder, checkpoint or run dir) into ``base``; return the output folder."""
    report = Progress(progress)
    dt = torch_dtype(dtype)
    shard_bytes = parse_shard_size(max_shard_size)
    device_map = _device_map(device)
    report(0.02, "checking the adapter and the base model")
    info = _adapter_info(adapter)
    base_path = resolve_base(base)
    out = check_output_dir(out_dir, overwrite=overwrite, inputs=(info.path, base_path if Path(base_path).is_dir()
                                                                 else None), protect=(info.run_dir,))
    template_name = _template_name(info, template, base)
    if not info.deepspeed_tag:
        for message in check_adapter_fits_base(info.path, info.adapter_config, base_path, base):
            report.warn(message)
    shapes = safetensors_shapes(Path(base_path)) if Path(base_path).is_dir() else {}
    if shapes:
        check_free_space(out, sum(numel(s) for s in shapes.values()) * dt.itemsize)

    report(0.1, f"loading the base model {base} ({dtype}, {device})")
    model = _load_base(base_path, dt, device_map)
    report(0.45, "applying the adapter")
    model = _apply_adapter(model, info, base_path)
    report(0.55, "merging the adapter into the weights")
    model = model.merge_and_unload()
    model.to(dt)
    tokenizer = extras.load_tokenizer([info.path if extras.has_tokenizer(info.path) else None, base_path], report)

    report(0.65, f"writing {out}")
    with staged_output(out) as tmp:
        save_model_folder(model, tmp, shard_bytes, safe)
        report(0.9, "writing tokenizer, generation config, template and README")
        extras.write_companions(tmp, info=info, tokenizer=tokenizer, template_name=template_name,
                                gen_sources=[base_path], model_config=model.config, progress=report)
        extras.write_readme(tmp, name=out.name, kind="merged", info=info, base=base, adapter=str(info.path),
                            template=template_name, dtype=dtype, source=str(info.path))
    report.done(f"wrote {out}")
    return out


def _template_name(info: CheckpointInfo, override: str | None, base: str) -> str:
    if override:
        return extras.resolve_template_name(override, base)
    record = extras.read_template_record(info.path)
    if record:
        return extras.resolve_template_name(record["name"], base)
    if info.config is not None and info.config.method.stage != "pretrain":
        return extras.resolve_template_name(info.config.data.template, base)
    return ""


def _load_base(base_path: str, dt, device_map: str):
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dt, device_map=device_map)
    except OSError as exc:
        raise UserError(f"cannot load the base model {base_path}: {exc}",
                        "Check the folder holds config.json and weights (or that the hub id is cached).") from None
    if getattr(model, "is_quantized", False):  # a pre-quantised base: merge needs real weights
        model = model.dequantize()
    return model


def _apply_adapter(model, info: CheckpointInfo, base_path: str):
    from peft import PeftConfig, PeftModel, get_peft_model, set_peft_model_state_dict

    try:
        if not info.deepspeed_tag:
            return PeftModel.from_pretrained(model, str(info.path))
        config = PeftConfig.from_pretrained(str(info.path))
        config.inference_mode = True
        peft_model = get_peft_model(model, config)
        result = set_peft_model_state_dict(peft_model, adapter_tensors(info, base_path))
        if getattr(result, "unexpected_keys", None):
            raise RuntimeError(f"unexpected adapter keys: {result.unexpected_keys[:3]}")
        return peft_model
    except (RuntimeError, ValueError) as exc:  # shape mismatches PEFT found that the header check could not
        first = str(exc).strip().splitlines()
        raise UserError(f"adapter {info.path} does not fit base {base_path}: {first[0] if first else exc}",
                        "Pass the base model the adapter was trained on "
                        f"({info.adapter_config.get('base_model_name_or_path', 'see adapter_config.json')}).") from None
