""""Fit to my GPU": change a RunConfig step by step until its memory estimate fits.

The steps go from free to costly, and each is taken only while the estimate is still too big:

1. fp32 -> bf16/fp16 mixed precision (the GPU default anyway);
2. gradient checkpointing on (about 30% slower, far fewer activations);
3. batch size 1 with more gradient accumulation (same effective batch);
4. with several GPUs and a full fine-tune: DeepSpeed ZeRO-2, then ZeRO-3;
5. full fine-tune -> LoRA -> QLoRA (4-bit base), with LoRA's usual learning rate;
6. an 8-bit paged AdamW (the QLoRA paper's optimizer);
7. gradient checkpoints offloaded to CPU memory;
8. the frozen input embeddings kept in CPU memory (LoRA/QLoRA, untied);
9. LoRA rank down to 16, alpha scaled to keep alpha / r;
10. max_length halved, down to 256 tokens.

If even that does not fit, :class:`CannotFit` says by how much, with the changes it tried.
"""

from __future__ import annotations

import math

from tunesmith.core.config import RunConfig
from tunesmith.core.errors import UserError
from tunesmith.core.memory.estimate import estimate_memory

MIN_MAX_LENGTH = 256
MIN_LORA_RANK = 16
LORA_LR = 2e-4
ZERO_ORDER = ("", "zero1", "zero2", "zero3")


class CannotFit(UserError):
    """No sensible change makes the run fit; ``config``/``changes``/``estimate`` hold the best try."""

    def __init__(self, message: str, fix: str, *, config: RunConfig, changes: list[str], estimate):
        super().__init__(message, fix)
        self.config, self.changes, self.estimate = config, changes, estimate


def _copy(cfg: RunConfig) -> RunConfig:
    return RunConfig.from_dict(cfg.to_dict())


def _precision(cfg):
    if cfg.training.precision != "fp32":
        return None
    cfg.training.precision = "auto"
    return "precision fp32 -> auto (bf16/fp16 mixed precision)"


def _checkpointing(cfg):
    if cfg.model.gradient_checkpointing:
        return None
    cfg.model.gradient_checkpointing = True
    return "gradient checkpointing on (about 30% slower)"


def _batch_one(cfg):
    t = cfg.training
    if t.batch_size <= 1:
        return None
    old_b, old_ga = t.batch_size, t.gradient_accumulation
    t.gradient_accumulation = old_ga * old_b
    t.batch_size = 1
    return (f"batch size {old_b} -> 1, gradient accumulation {old_ga} -> {t.gradient_accumulation} "
            f"(same effective batch {cfg.effective_batch_size})")


def _zero(cfg):
    ds = cfg.distributed.deepspeed
    if cfg.method.finetuning != "full" or cfg.world_size < 2 or ds not in ZERO_ORDER or ds == "zero3":
        return None
    nxt = ZERO_ORDER[max(ZERO_ORDER.index(ds) + 1, 2)]  # ZeRO-1 saves little: go to ZeRO-2 first
    cfg.distributed.deepspeed = nxt
    return f"DeepSpeed {ds or 'off'} -> {nxt} (split states over {cfg.world_size} GPUs)"


def _method(cfg):
    m = cfg.method
    if m.finetuning == "full":
        m.finetuning = "lora"
        text = "full fine-tune -> LoRA"
        if cfg.training.learning_rate < 1e-4:
            text += f" (learning rate {cfg.training.learning_rate:g} -> {LORA_LR:g})"
            cfg.training.learning_rate = LORA_LR
        return text
    if m.finetuning == "lora":
        m.finetuning = "qlora"
        return f"LoRA -> QLoRA ({cfg.quantization.bits}-bit {cfg.quantization.quant_type} base weights)"
    return None


def _optimizer(cfg):
    if cfg.training.optimizer not in ("adamw_torch", "adamw_torch_fused", "paged_adamw_32bit"):
        return None
    old = cfg.training.optimizer
    cfg.training.optimizer = "paged_adamw_8bit"
    return f"optimizer {old} -> paged_adamw_8bit"


def _offload(cfg):
    m = cfg.model
    if not m.gradient_checkpointing or m.offload_checkpoints:
        return None
    m.offload_checkpoints = True
    return "gradient checkpoints offloaded to CPU memory"


def _embeddings(cfg):
    m = cfg.model
    if not cfg.uses_lora or m.offload_embeddings:
        return None
    m.offload_embeddings = True
    return "input embeddings kept in CPU memory"


def _rank(cfg):
    lo = cfg.lora
    if not cfg.uses_lora or lo.r <= MIN_LORA_RANK:
        return None
    old_r, old_alpha = lo.r, lo.alpha
    lo.r = MIN_LORA_RANK
    lo.alpha = max(1, round(old_alpha * MIN_LORA_RANK / old_r))
    return f"LoRA rank {old_r} -> {lo.r} (alpha {old_alpha} -> {lo.alpha}, same alpha/r)"


def _shorter(cfg):
    d = cfg.data
    if d.max_length <= MIN_MAX_LENGTH:
        return None
    old = d.max_length
    d.max_length = max(MIN_MAX_LENGTH, old // 2)
    return f"max_length {old} -> {d.max_length} tokens" + (" (longer samples are cut)" if not d.pack else "")


# (step, may repeat)
STEPS = ((_precision, False), (_checkpointing, False), (_batch_one, False), (_zero, True), (_method, True),
         (_optimizer, False), (_offload, False), (_embeddings, False), (_rank, False), (_shorter, True))


def fit(cfg: RunConfig, gpu_gb: float) -> tuple[RunConfig, list[str]]:
    """See :func:`fit_to_gpu`."""
    if not gpu_gb or gpu_gb <= 0:
        raise UserError(f"GPU size must be a positive number of GB, got {gpu_gb!r}.", "Example: 8, 24 or 80.")
    current = _copy(cfg)
    estimate = estimate_memory(current, gpu_gb=gpu_gb)
    changes: list[str] = []
    if estimate.fits():
        return current, changes
    for step, repeat in STEPS:
        while True:
            text = step(current)
            if text is None:
                break
            estimate = estimate_memory(current, gpu_gb=gpu_gb)
            changes.append(f"{text}: {estimate.total_gb:.1f} GB")
            if estimate.fits():
                return current, changes
            if not repeat:
                break
    biggest = max(estimate.breakdown, key=estimate.breakdown.get)
    need = math.ceil(estimate.total_gb)
    tried = "; ".join(changes) if changes else "nothing left to change"
    raise CannotFit(f"{cfg.model.name_or_path} cannot be made to fit a {gpu_gb:g} GB GPU: after every change "
                    f"({tried}) it still needs about {estimate.total_gb:.1f} GB, mostly {biggest} "
                    f"({estimate.breakdown[biggest] / 2 ** 30:.1f} GB).",
                    f"Use a GPU with at least {need} GB, more GPUs with DeepSpeed ZeRO-3, or a smaller model.",
                    config=current, changes=changes, estimate=estimate)


def fit_to_gpu(cfg: RunConfig, gpu_gb: float) -> tuple[RunConfig, list[str]]:
    """A copy of ``cfg`` changed until its estimate fits ``gpu_gb`` GB, and the list of changes.

    Raises :class:`CannotFit` (a UserError) when nothing sensible fits.
    """
    return fit(cfg, gpu_gb)
