"""``convert to-hf``: a training checkpoint -> a clean Hugging Face folder.

LoRA/QLoRA checkpoints become a PEFT adapter folder (``adapter_config.json`` +
``adapter_model.safetensors``) that plain ``PeftModel.from_pretrained`` loads; full fine-tunes become a
model folder that plain ``AutoModelForCausalLM.from_pretrained`` loads. DeepSpeed ZeRO shards are
consolidated first. The tokenizer, generation config, config.yaml, prompt template and a README go along.
"""

from __future__ import annotations

import os
from pathlib import Path

from tunesmith.core.errors import UserError
from tunesmith.core.export import extras
from tunesmith.core.export.progress import Progress, ProgressFn
from tunesmith.core.export.source import CheckpointInfo, inspect_checkpoint
from tunesmith.core.export.staging import check_free_space, check_output_dir, staged_output
from tunesmith.core.export.weights import (adapter_tensors, cast_floats, load_full_model, numel, safetensors_shapes,
                                           save_model_folder, torch_dtype)


def parse_shard_size(text: str) -> int:
    """``"2GB"`` -> 2000000000; a UserError for anything else.

    >>> parse_shard_size("500MB")
    500000000
    """
    from transformers.utils.hub import convert_file_size_to_int

    try:
        size = convert_file_size_to_int(str(text).strip())
    except (ValueError, TypeError):
        size = None
    if not isinstance(size, int) or size <= 0:
        raise UserError(f"max shard size '{text}' is not a size.", "Write it like 2GB, 500MB or 1GiB.")
    return size


def _base_local_path(base_ref: str) -> str | None:
    """Resolve the base model to a local folder if possible (``embedded:`` imports it once)."""
    from tunesmith.core.refs import resolve_model_path

    if not base_ref:
        return None
    path = resolve_model_path(base_ref)
    return path if Path(path).is_dir() else None


def _template_name(info: CheckpointInfo, override: str | None, base_ref: str) -> str:
    if override:
        return extras.resolve_template_name(override, base_ref)
    if info.config is not None:
        if info.config.method.stage == "pretrain":
            return ""
        return extras.resolve_template_name(info.config.data.template, base_ref)
    record = extras.read_template_record(info.path)
    return extras.resolve_template_name(record["name"], base_ref) if record else ""


def convert_to_hf(src: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str = "fp16",
                  max_shard_size: str = "2GB", safe: bool = True, overwrite: bool = False,
                  template: str | None = None, progress: ProgressFn | None = None) -> Path:
    """Convert a run directory (its newest checkpoint) or a checkpoint folder; return the output folder.

    ``progress(fraction, message)`` is called as the work advances. Nothing is written to ``out_dir``
    until the whole folder is ready (staged in a hidden sibling, then renamed).
    """
    report = Progress(progress)
    dt = torch_dtype(dtype)
    shard_bytes = parse_shard_size(max_shard_size)
    report(0.02, "reading the checkpoint")
    info = inspect_checkpoint(src)
    out = check_output_dir(out_dir, overwrite=overwrite, inputs=(info.path,), protect=(info.run_dir,))
    base_ref = info.base_model
    template_name = _template_name(info, template, base_ref)
    needs_base = info.kind == "adapter" and bool(info.deepspeed_tag)
    base_path = _base_local_path(base_ref) if needs_base or not extras.has_tokenizer(info.path) else None
    if needs_base and base_path is None:
        raise UserError(f"the base model {base_ref or '(unknown)'} is not available locally, and it is needed to "
                        "read this DeepSpeed adapter checkpoint.", "Download the base model and set its folder "
                        "in config.yaml (model.name_or_path).")

    if info.kind == "adapter":
        report(0.1, "reading adapter weights" + (" from DeepSpeed shards" if info.deepspeed_tag else ""))
        tensors = cast_floats(adapter_tensors(info, base_path), dt)
        check_free_space(out, sum(t.numel() * t.element_size() for t in tensors.values()))
        model = None
    else:
        shapes = safetensors_shapes(info.path)
        if shapes:
            check_free_space(out, sum(numel(s) for s in shapes.values()) * dt.itemsize)
        report(0.1, "loading the model" + (" from DeepSpeed shards" if info.deepspeed_tag else ""))
        model = load_full_model(info, dt)
    report(0.5, "loading the tokenizer")
    tokenizer = extras.load_tokenizer([info.path if extras.has_tokenizer(info.path) else None, base_path,
                                       _tokenizer_ref(base_ref)], report)

    report(0.6, f"writing {out}")
    with staged_output(out) as tmp:
        if model is None:
            _save_adapter(info, tensors, tmp, safe)
            gen_sources, model_config = [base_path], _maybe_config(base_path)
        else:
            save_model_folder(model, tmp, shard_bytes, safe)
            gen_sources, model_config = [info.path], model.config
        report(0.9, "writing tokenizer, generation config, template and README")
        extras.write_companions(tmp, info=info, tokenizer=tokenizer, template_name=template_name,
                                gen_sources=gen_sources, model_config=model_config, progress=report)
        extras.write_readme(tmp, name=out.name, kind=info.kind, info=info, base=base_ref, template=template_name, dtype=dtype,
                            source=str(info.path))
    report.done(f"wrote {out}")
    return out


def _tokenizer_ref(base_ref: str) -> str | None:
    from tunesmith.core.refs import resolve_tokenizer_path

    try:
        return resolve_tokenizer_path(base_ref) if base_ref else None
    except UserError:
        return None


def _maybe_config(path: str | None):
    if not path:
        return None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return None


def _save_adapter(info: CheckpointInfo, tensors: dict, folder: Path, safe: bool) -> None:
    """adapter_config.json (through PEFT, so it is one PEFT itself reads) + the weights."""
    import torch
    from peft import PeftConfig

    config = PeftConfig.from_pretrained(str(info.path))
    config.inference_mode = True
    config.save_pretrained(str(folder))
    if safe:
        from safetensors.torch import save_file

        save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(tensors, folder / "adapter_model.bin")
