"""Load the tokenizer and the model to train: full, LoRA, QLoRA (nf4 + double quant), DoRA.

Decisions, in one place:
* precision 'auto': bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU;
* attention 'auto': flash_attention_2 when flash-attn imports and a GPU is present, else SDPA;
* LoRA/QLoRA keep the frozen base in the compute dtype; full fine-tuning keeps fp32 master weights
  (AMP does the bf16/fp16 maths) unless DeepSpeed, which keeps its own fp32 copy;
* QLoRA: every frozen weight bitsandbytes does not quantise (embeddings, lm_head, norms) stays in the
  compute dtype, and LoRA adapters are fp32 (:func:`parameter_dtypes`, which the memory estimate reads);
  peft's ``prepare_model_for_kbit_training`` would upcast those frozen weights to fp32 (1 GB for
  Llama-2-7B, 3 GB for InternLM2.5-7B) for fp16 stability that bf16 does not need, so we do only its
  steps that matter: freeze, input grads for checkpointing, checkpointing on;
* the loss (:func:`resolve_loss`), the optimizer (:func:`resolve_optimizer`) and checkpoint offload follow
  the RunConfig the same way for the trainer and the estimate;
* MoE models whose experts are fused 3-D tensors (Mixtral, Qwen-MoE in transformers 5) cannot be QLoRA'd:
  bitsandbytes quantises only ``nn.Linear`` layers, so the experts would stay 16-bit (:func:`moe_refusal`);
* ``trust_remote_code`` is passed through exactly as the user set it (off by default).
"""

from __future__ import annotations

import importlib.util

from tunesmith.core.config import RunConfig
from tunesmith.core.errors import ConfigError


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


def parameter_dtypes(cfg: RunConfig, precision: str) -> dict:
    """Storage of each parameter group while training: the one answer the trainer and the estimate share.

    ``precision`` is the resolved training precision (bf16/fp16/fp32). Keys: quantized (linear layers of
    a QLoRA base), frozen (embeddings, lm_head, norms and anything else not quantised), adapters, trainable
    (full fine-tuning). Values are 'nf4'/'fp4'/'int8'/'bf16'/'fp16'/'fp32'.

    >>> parameter_dtypes(RunConfig(), "bf16")
    {'quantized': 'nf4', 'frozen': 'bf16', 'adapters': 'fp32', 'trainable': 'fp32'}
    """
    q = cfg.quantization
    compute = precision if q.compute_dtype == "auto" else q.compute_dtype
    quantized = None
    if cfg.method.finetuning == "qlora":
        quantized = "int8" if q.bits == 8 else q.quant_type
    frozen = compute if cfg.method.finetuning == "qlora" else precision
    return {"quantized": quantized, "frozen": frozen, "adapters": "fp32", "trainable": "fp32"}


def embeddings_offloaded(cfg: RunConfig, config: dict) -> bool:
    """Whether the input embedding table lives in CPU memory (tunesmith.core.train.embed_offload; the estimate asks too).

    Only for frozen tables (LoRA/QLoRA) that the output head does not share, and not for Gemma, whose
    embedding subclass scales its output.
    """
    tied = config.get("tie_word_embeddings", config.get("tied_embeddings", True))
    return bool(cfg.model.offload_embeddings and cfg.uses_lora and not tied
                and not str(config.get("model_type", "")).startswith("gemma"))


def resolve_loss(cfg: RunConfig, *, cuda: bool | None = None) -> str:
    """'liger' | 'chunked' | 'standard' for this run.

    ZeRO-3 shards the output head, which the chunked loss reads outside the module's forward, so it
    keeps the standard loss there (as does 'auto' for full fine-tunes, which usually run under ZeRO-3).
    """
    want = cfg.training.loss
    ds = cfg.distributed.deepspeed
    if want == "standard" or (ds and ds not in ("zero1", "zero2", "zero2_offload")):
        return "standard"
    if want == "auto" and cfg.method.finetuning == "full":
        return "standard"
    if cuda is None:
        cuda = importlib.util.find_spec("torch") is not None and has_cuda()
    if want in ("auto", "liger"):
        from tunesmith.core.train.loss import liger_available

        if cuda and liger_available():
            return "liger"
    return "chunked"


def resolve_optimizer(cfg: RunConfig, *, cuda: bool | None = None) -> str:
    """The HF Trainer ``optim`` name: paged optimizers need CUDA's unified memory, so without a GPU
    ``paged_adamw_8bit`` runs as ``adamw_8bit`` (same 8-bit states, bitsandbytes' CPU kernels)."""
    name = cfg.training.optimizer
    if cuda is None:
        cuda = has_cuda()
    if not cuda and name.startswith("paged_"):
        name = name.removeprefix("paged_")
        return "adamw_torch" if name == "adamw_32bit" else name
    return name


def moe_refusal(config: dict, cfg: RunConfig) -> str | None:
    """Why QLoRA cannot quantise this model's experts, or None (reads config.json fields only)."""
    if cfg.method.finetuning != "qlora":
        return None
    from tunesmith.core.model import arch_spec
    from tunesmith.core.model import param_inventory

    spec = arch_spec(config)
    if not spec.experts:
        return None
    inv = param_inventory(config)
    if inv.other <= 0.2 * inv.total:
        return None
    return (f"its {spec.experts} experts per layer are fused 3-D tensors in this transformers version, not nn.Linear "
            f"layers, and bitsandbytes quantises only nn.Linear: {inv.other / 1e9:.1f}B expert parameters would "
            f"stay 16-bit ({inv.other * 2 / 2 ** 30:.0f} GB), which is not QLoRA")


def model_path(cfg: RunConfig) -> str:
    from tunesmith.core.refs import resolve_model_path

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
        refusal = moe_refusal(model.config.to_dict(), cfg)
        if refusal:
            raise ConfigError(f"QLoRA of {cfg.model.name_or_path} is not possible: {refusal}.",
                              "Use LoRA on enough GPUs (python -m tunesmith estimate shows how much), or a dense model.",
                              field="method.finetuning")
        prepare_kbit(model, cfg, torch_dtype(parameter_dtypes(cfg, precision)["frozen"]))
    if cfg.uses_lora and add_adapters:
        model = add_lora(model, cfg)
    if embeddings_offloaded(cfg, model.config.to_dict()):
        from tunesmith.core.train.embed_offload import offload_input_embeddings

        if offload_input_embeddings(model) and cfg.model.gradient_checkpointing:
            model.enable_input_require_grads()  # the hook left with the GPU embedding module
    if cfg.model.gradient_checkpointing and cfg.model.offload_checkpoints:
        from tunesmith.core.train.checkpointing import enable_offloaded_checkpointing

        enable_offloaded_checkpointing(model)
    return model


def prepare_kbit(model, cfg: RunConfig, frozen_dtype) -> None:
    """peft's k-bit preparation without its fp32 upcast (see the module docstring).

    Anything bitsandbytes left in another float dtype is cast to ``frozen_dtype``, so the stored dtypes
    are exactly :func:`parameter_dtypes`' answer.
    """
    for param in model.parameters():
        param.requires_grad = False
        if param.is_floating_point() and param.__class__.__name__ not in ("Params4bit", "Int8Params") \
                and param.dtype != frozen_dtype:
            param.data = param.data.to(frozen_dtype)
    if cfg.model.gradient_checkpointing:
        # Non-reentrant checkpointing does not need it, but the offloaded (reentrant-style) one does, and
        # without it a frozen embedding output would leave the first layer's adapters gradient-free.
        model.enable_input_require_grads()
        if not cfg.model.offload_checkpoints:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


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
                              "Use [all-linear], or names printed by `python -m tunesmith model-info MODEL`.",
                              field="lora.target_modules") from None
        raise


def _check_bnb() -> None:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("QLoRA needs the bitsandbytes package.", "pip install bitsandbytes, or choose LoRA.",
                          field="method.finetuning")
