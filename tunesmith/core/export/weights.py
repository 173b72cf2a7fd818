"""Reading checkpoint weights: PEFT adapter tensors, full models, and DeepSpeed ZeRO shards.

DeepSpeed checkpoints are consolidated with ``deepspeed.utils.zero_to_fp32`` (the fp32 master
weights are the authoritative copy; ZeRO-3 runs may not even have consolidated HF weights).
"""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.core.errors import UserError
from tunesmith.core.export.source import CheckpointInfo

DTYPES = ("fp16", "bf16", "fp32")


def torch_dtype(name: str):
    """``"bf16"`` -> ``torch.bfloat16``; accepts the long names too.

    >>> str(torch_dtype("fp32"))
    'torch.float32'
    """
    import torch

    table = {"fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp32": torch.float32, "float32": torch.float32, "float": torch.float32}
    if name not in table:
        from tunesmith.core.errors import close_matches

        raise UserError(f"unknown dtype '{name}'.", close_matches(str(name), DTYPES))
    return table[name]


def cast_floats(tensors: dict, dtype) -> dict:
    """Cast floating-point tensors to ``dtype`` (integer buffers are left alone), contiguous for saving."""
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}


def read_tensors(path: Path) -> dict:
    """All tensors of a .safetensors or torch .bin file, on CPU."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(str(path), map_location="cpu", weights_only=True)


def adapter_tensors(info: CheckpointInfo, base_path: str | None) -> dict:
    """The adapter's weights in PEFT's saved format (``...q_proj.lora_A.weight``)."""
    if info.deepspeed_tag:
        return _adapter_from_zero(info, base_path)
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (info.path / name).is_file():
            tensors = read_tensors(info.path / name)
            if not tensors or any(t.numel() == 0 for t in tensors.values()):
                raise UserError(f"{info.path / name} holds empty tensors (a ZeRO-3 save without gathered weights).",
                                "Convert the checkpoint that has its global_stepN/ DeepSpeed shards.")
            return tensors
    raise UserError(f"{info.path} has no adapter weights.", "Use a complete checkpoint-N folder.")


def zero_state_dict(info: CheckpointInfo, *, trainable_only: bool) -> dict:
    """Consolidate the ZeRO-2/3 shards of a checkpoint into one fp32 state dict."""
    import contextlib
    import io

    try:  # imported outside the redirect below: DeepSpeed's logger keeps the stream it sees at import
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    except ImportError:
        raise UserError(f"{info.path} is a DeepSpeed checkpoint and DeepSpeed is not installed.",
                        "pip install deepspeed (it is needed only to read the shards).") from None
    # zero_to_fp32 prints its progress to stdout, which would mix with the CLI's output
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return get_fp32_state_dict_from_zero_checkpoint(str(info.path), tag=info.deepspeed_tag,
                                                            exclude_frozen_parameters=trainable_only)
        except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
            raise UserError(f"cannot read the DeepSpeed shards in {info.path / info.deepspeed_tag}: {exc}",
                            "Make sure every rank's *_optim_states.pt and *_model_states.pt file is present.") from None


def _adapter_from_zero(info: CheckpointInfo, base_path: str | None) -> dict:
    """Map consolidated PeftModel parameters to PEFT's saved keys, letting PEFT do the naming.

    A PeftModel is built on the meta device (no memory) just to run ``get_peft_model_state_dict``.
    """
    import torch
    from peft import PeftConfig, get_peft_model, get_peft_model_state_dict
    from transformers import AutoConfig, AutoModelForCausalLM

    state = zero_state_dict(info, trainable_only=True)
    if not base_path:
        raise UserError("cannot tell which base model this DeepSpeed adapter belongs to.",
                        "Keep config.yaml in the run folder (model.name_or_path).")
    config = AutoConfig.from_pretrained(base_path)
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(config)
    peft_config = PeftConfig.from_pretrained(str(info.path))
    peft_config.inference_mode = True
    model = get_peft_model(base, peft_config)
    wanted = {k for k, _ in model.named_parameters() if "lora_" in k or "modules_to_save" in k}
    missing = wanted - set(state)
    if missing:
        raise UserError(f"the DeepSpeed shards in {info.path} lack {len(missing)} adapter tensors "
                        f"(e.g. {sorted(missing)[0]}).", "Use a checkpoint written by the same run configuration.")
    model.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=False, assign=True)
    tensors = get_peft_model_state_dict(model, save_embedding_layers=False)
    return {k: v.detach().clone() for k, v in tensors.items()}


def load_full_model(info: CheckpointInfo, dtype):
    """A full fine-tune's model on CPU in ``dtype`` (from ZeRO shards when present)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if not info.deepspeed_tag:
        return AutoModelForCausalLM.from_pretrained(str(info.path), dtype=dtype, device_map="cpu")
    state = zero_state_dict(info, trainable_only=False)
    config = AutoConfig.from_pretrained(str(info.path))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    result = model.load_state_dict(cast_floats(state, dtype), strict=False, assign=True)
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if still_meta:
        raise UserError(f"the DeepSpeed shards in {info.path} lack {len(still_meta)} weights "
                        f"(e.g. {still_meta[0]}; unexpected: {list(result.unexpected_keys)[:2]}).",
                        "Use a checkpoint written by the same model and run configuration.")
    model.generation_config = _generation_config_or_default(info.path, config)
    return model.eval()


def _generation_config_or_default(folder: Path, config):
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(str(folder))
    except OSError:
        return GenerationConfig.from_model_config(config)


def safetensors_shapes(model_dir: Path) -> dict[str, tuple]:
    """Tensor name -> shape read from safetensors headers only (no weights loaded); {} if not available."""
    from safetensors import safe_open

    index = model_dir / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else \
        (["model.safetensors"] if (model_dir / "model.safetensors").is_file() else [])
    shapes: dict[str, tuple] = {}
    for name in files:
        with safe_open(str(model_dir / name), framework="pt") as handle:
            for key in handle.keys():
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


def numel(shape) -> int:
    """Elements in a tensor of this shape.

    >>> numel((2, 3, 4))
    24
    """
    n = 1
    for d in shape:
        n *= d
    return n


def save_model_folder(model, folder: Path, shard_bytes: int, safe: bool) -> None:
    """config.json + weights in shards of at most ``shard_bytes`` (.safetensors, or .bin when not ``safe``)."""
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config  # de-quantised weights are saved as plain tensors
    if safe:
        model.save_pretrained(str(folder), max_shard_size=shard_bytes)
        return
    from huggingface_hub import save_torch_state_dict

    model.config.save_pretrained(str(folder))
    save_torch_state_dict(model.state_dict(), str(folder), max_shard_size=shard_bytes, safe_serialization=False)
