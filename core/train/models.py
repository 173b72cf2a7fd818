"""Load the tokenizer and the model to train: full, LoRA, QLoRA (nf4 + double quant), DoRA.

Decisions, in one place:
* precision 'auto': bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU;
* attention 'auto': flash_attention_2 when flash-attn imports and a GPU is present, else SDPA;
* LoRA/QLoRA keep the frozen base in the compute dtype; full fine-tuning keeps fp32 master weights
  (AMP does the bf16/fp16 maths) unless DeepSpeed, which keeps its own fp32 copy;
* ``trust_remote_code`` is passed through exactly as the user set it (off by default).
"""

from __future__ import annotations

import importlib.util

from core.config import RunConfig
from core.errors import ConfigError


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_precision(cfg: RunConfig) -> str:
    """'bf16' | 'fp16' | 'fp32' for this machine."""
    import torch

    want = cfg.training.precision
    if want != "auto":
        return want
    if not has_cuda():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def resolve_attn(cfg: RunConfig) -> str:
    want = cfg.model.attn_implementation
    if want != "auto":
        return want
    if has_cuda() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def model_path(cfg: RunConfig) -> str:
    from core.gguf_import import resolve_model_path

    return resolve_model_path(cfg.model.name_or_path)


def load_tokenizer(cfg: RunConfig, path: str | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path or model_path(cfg), trust_remote_code=cfg.model.trust_remote_code)
    if tok.pad_token_id is None:
        # Padding only ever sits under label -100 / outside the attention, so EOS is a safe pad.
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def quantization_config(cfg: RunConfig, precision: str):
    from transformers import BitsAndBytesConfig

    q = cfg.quantization
    compute = torch_dtype(precision if q.compute_dtype == "auto" else q.compute_dtype)
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                              bnb_4bit_use_double_quant=q.double_quant, bnb_4bit_compute_dtype=compute,
                              bnb_4bit_quant_storage=compute)


def load_model(cfg: RunConfig, *, local_rank: int = 0, deepspeed: bool = False, path: str | None = None,
               add_adapters: bool = True):
    """The base model ready for training (PEFT adapters added for LoRA/QLoRA unless ``add_adapters`` is off,
    e.g. for TRL, which adds them itself so the reference model is the base with adapters disabled)."""
    import torch
    from transformers import AutoModelForCausalLM

    precision = resolve_precision(cfg)
    finetuning = cfg.method.finetuning
    kwargs = {"trust_remote_code": cfg.model.trust_remote_code, "attn_implementation": resolve_attn(cfg)}
    if finetuning == "full" and not deepspeed:
        kwargs["dtype"] = torch.float32
    else:
        kwargs["dtype"] = torch_dtype(precision)
    if finetuning == "qlora":
        _check_bnb()
        kwargs["quantization_config"] = quantization_config(cfg, precision)
        kwargs["device_map"] = {"": local_rank} if has_cuda() else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(path or model_path(cfg), **kwargs)
    model.config.use_cache = False  # the cache is useless in training and conflicts with checkpointing
    if finetuning == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.model.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.uses_lora and add_adapters:
        model = add_lora(model, cfg)
    return model


def lora_config(cfg: RunConfig):
    from peft import LoraConfig

    lo = cfg.lora
    targets = lo.target_modules
    target = "all-linear" if targets in (["all-linear"], ["all_linear"], "all-linear") else list(targets)
    return LoraConfig(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, target_modules=target, bias="none",
                      use_dora=lo.use_dora, use_rslora=lo.use_rslora, task_type="CAUSAL_LM")


def add_lora(model, cfg: RunConfig):
    from peft import get_peft_model

    try:
        return get_peft_model(model, lora_config(cfg))
    except ValueError as exc:
        if "Target modules" in str(exc) or "target_modules" in str(exc):
            raise ConfigError(f"none of the LoRA target layers {cfg.lora.target_modules} exist in this model.",
                              "Use [all-linear], or names printed by `python -m core model-info MODEL`.",
                              field="lora.target_modules") from None
        raise


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as their real number of values."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if hasattr(param, "quant_state") or param.__class__.__name__ == "Params4bit":
            n *= 2  # two 4-bit values per stored byte
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total


def _check_bnb() -> None:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("QLoRA needs the bitsandbytes package.", "pip install bitsandbytes, or choose LoRA.",
                          field="method.finetuning")
