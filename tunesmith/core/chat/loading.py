"""What to load for a chat: a base model, an adapter, a merged folder, a run or checkpoint.

A run directory or checkpoint brings its own base model, adapter, prompt template and system text
(from config.yaml); an exported folder brings its prompt_template.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tunesmith.core.errors import UserError, close_matches, missing_model_error

BITS = (4, 8)
DTYPES = ("auto", "fp16", "bf16", "fp32")


@dataclass
class ModelSpec:
    """Resolved sources of a chat model."""

    base: str                     # folder or hub id of the (base or merged or full) model
    adapter: str | None = None    # PEFT adapter folder, if any
    template: str | None = None   # prompt template recorded with the model ("auto" allowed), None = unknown
    system: str = ""              # default system text recorded with the model
    label: str = ""               # what the user typed, for messages
    tokenizer: str | None = None  # where the tokenizer is, when not beside the weights


def _recorded_template(folder: Path) -> str | None:
    path = folder / "prompt_template.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("name") or None
        except (json.JSONDecodeError, AttributeError):
            return None
    return None


def _from_checkpoint(path: Path, label: str) -> ModelSpec:
    """A run dir / checkpoint / adapter folder -> spec, using config.yaml when it is there."""
    from tunesmith.core.export.source import inspect_checkpoint

    info = inspect_checkpoint(path)
    cfg = info.config
    template = _recorded_template(info.path) or (
        None if cfg is None else ("" if cfg.method.stage == "pretrain" else cfg.data.template))
    system = cfg.data.system if cfg is not None else ""
    if info.kind == "full":
        if not info.has_weights:
            raise UserError(f"{info.path} holds only DeepSpeed shards.",
                            f"Run `python -m tunesmith convert to-hf {info.path} OUT_DIR` first and chat with OUT_DIR.")
        tokenizer = None if _has_tokenizer(str(info.path)) else _tokenizer_of(info.base_model)
        return ModelSpec(str(info.path), None, template, system, label, tokenizer)
    if not info.has_weights:
        raise UserError(f"{info.path} holds only DeepSpeed shards.",
                        f"Run `python -m tunesmith convert to-hf {info.path} OUT_DIR` first and use OUT_DIR as --adapter.")
    base = info.base_model
    if not base:
        raise UserError(f"cannot tell which base model the adapter {info.path} belongs to.",
                        "Give the base model as MODEL and this folder as --adapter.")
    return ModelSpec(base, str(info.path), template, system, label)


def is_adapter_or_run(path: Path) -> bool:
    """Folders whose config.yaml / adapter_config.json say what to load (runs, checkpoints, exports)."""
    return any((path / n).exists() for n in ("adapter_config.json", "checkpoints", "config.yaml"))


def resolve_spec(model: str, adapter: str | None = None) -> ModelSpec:
    """Work out base, adapter, template and system text from what the user typed."""
    from tunesmith.core.refs import is_embedded, looks_like_hub_id, resolve_model_path

    if not model:
        raise UserError("no model given.", "Give a model folder, a run folder, or embedded:SmolLM2-135M-Instruct.")
    local = Path(model).expanduser()
    if not is_embedded(model) and local.is_dir() and is_adapter_or_run(local):
        if adapter:
            raise UserError(f"{model} already is a run or adapter folder, and --adapter was given too.",
                            "Give the base model as MODEL with --adapter, or the run folder alone.")
        spec = _from_checkpoint(local, model)
    else:
        path = resolve_model_path(model)
        if Path(path).is_dir():
            if not (Path(path) / "config.json").is_file():
                raise UserError(f"{path} has no config.json, so it is not a model folder.",
                                "Give a model folder, a run folder, or a checkpoint folder.")
            spec = ModelSpec(path, None, _recorded_template(Path(path)), "", model)
        elif not looks_like_hub_id(model):
            raise missing_model_error(model, "model")
        else:
            spec = ModelSpec(path, None, None, "", model)
        if adapter:
            a = Path(adapter).expanduser()
            if not a.is_dir():
                raise UserError(f"adapter {adapter} does not exist.", "Give the adapter folder, a checkpoint or a run.")
            adapter_spec = _from_checkpoint(a, adapter)
            if adapter_spec.adapter is None:
                raise UserError(f"{adapter} is a full model, not an adapter.", "Give it as MODEL instead.")
            spec.adapter = adapter_spec.adapter
            spec.template = spec.template or adapter_spec.template
            spec.system = adapter_spec.system
    spec.base = resolve_model_path(spec.base) if is_embedded(spec.base) else spec.base
    return spec


def system_text(system: str | None, system_template: str | None, bot_name: str = "BOT") -> str | None:
    """``--system`` or a named XTuner system template, with {bot_name} filled in (None = not given)."""
    from tunesmith.core.data.templates import SYSTEM_TEMPLATES

    if system and system_template:
        raise UserError("--system and --system-template cannot be used together.", "Give one of them.")
    if system_template:
        if system_template not in SYSTEM_TEMPLATES:
            raise UserError(f"unknown system template '{system_template}'.",
                            close_matches(system_template, SYSTEM_TEMPLATES))
        return SYSTEM_TEMPLATES[system_template].replace("{bot_name}", bot_name)
    return system


def load_model(spec: ModelSpec, *, bits: int | None = None, dtype: str = "auto", device: str = "auto",
               trust_remote_code: bool = False):
    """(model, tokenizer, has_adapter): the base in ``dtype`` (or 4/8-bit), the adapter on top."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if bits is not None and bits not in BITS:
        raise UserError(f"bits must be 4 or 8, got {bits}.", "Use --bits 4 or --bits 8, or leave it out.")
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}'.", close_matches(dtype, DTYPES))
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise UserError("device cuda was asked for but no CUDA GPU is available.", "Use device cpu or auto.")
    if spec.adapter:
        from tunesmith.core.export.compat import check_adapter_fits_base
        from tunesmith.core.export.source import read_adapter_config

        if Path(spec.base).is_dir():
            check_adapter_fits_base(Path(spec.adapter), read_adapter_config(Path(spec.adapter)), spec.base)
    if dtype == "auto":
        dt = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    else:
        from tunesmith.core.export.weights import torch_dtype

        dt = torch_dtype(dtype)
    kwargs = {"dtype": dt, "trust_remote_code": trust_remote_code,
              "device_map": ("auto" if cuda else "cpu") if device == "auto" else device}
    if bits:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dt) if bits == 4 else BitsAndBytesConfig(load_in_8bit=True)
    tokenizer_src = spec.adapter if spec.adapter and _has_tokenizer(spec.adapter) else (spec.tokenizer or spec.base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_src, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(spec.base, **kwargs)
    except (OSError, ValueError) as exc:
        from tunesmith.core.errors import needs_remote_code, remote_code_error

        if needs_remote_code(exc):
            raise remote_code_error(spec.label or spec.base) from None
        raise UserError(f"cannot load model {spec.label or spec.base}: {str(exc).splitlines()[0]}",
                        "Check the folder holds config.json, weights and tokenizer files (hub ids must be "
                        "in the local cache; this machine may be offline).") from None
    if spec.adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, spec.adapter)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"adapter {spec.adapter} does not fit {spec.base}: {str(exc).splitlines()[0]}",
                            "Give the base model the adapter was trained on.") from None
    model.eval()
    return model, tokenizer, bool(spec.adapter)


def _tokenizer_of(base: str) -> str | None:
    """The base model's tokenizer location (cheap for the embedded model), or None."""
    from tunesmith.core.refs import resolve_tokenizer_path

    if not base:
        return None
    try:
        return resolve_tokenizer_path(base)
    except UserError:
        return None


def _has_tokenizer(folder: str) -> bool:
    return any((Path(folder) / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))
