"""Peak GPU memory of a training run, estimated from the model's config.json alone.

``estimate_memory(cfg)`` returns a :class:`MemoryEstimate` whose ``breakdown`` splits the peak of one
GPU into weights, adapters, gradients, optimizer, activations, logits and overhead (bytes). Every
constant it uses lives in :data:`PARAMS` (a :class:`MemoryParams`), with its source, so the estimate
can be calibrated against measured peaks in one place.

How each part is computed (N = parameters, T = tokens per micro-batch = batch x max_length, doubled
for DPO/ORPO's chosen + rejected, h = hidden, I = MLP width a token passes through, L = layers,
V = vocabulary, a = bytes of a 16-bit activation (2; 4 in fp32)):

* weights: full/LoRA base in the training dtype. QLoRA: nf4 linear layers at 0.5 B/param plus their
  quantisation constants (double quant: 8-bit absmax per 64 values + fp32 per 256 blocks, about
  0.516 B/param in all); everything bitsandbytes does not quantise (embeddings, output head, norms,
  fused MoE experts) stays in the compute dtype (``tunesmith.core.train.models.parameter_dtypes``, which the
  trainer applies; peft's k-bit preparation would upcast it to fp32, ours does not). Full fine-tuning
  without DeepSpeed keeps fp32 weights (AMP) plus autocast's 16-bit copies of the matmul weights; with
  DeepSpeed 16-bit weights and an fp32 master copy in the optimizer.
* adapters: r x (in + out) per adapted linear layer, fp32 (peft keeps adapters in fp32).
* gradients: one per trainable parameter, in the trainable weights' dtype; DDP adds a same-size bucket copy.
* optimizer: AdamW m and v in fp32 (8 B/param; 2 B for 8-bit optimizers) + the fp32 master (4 B) under
  DeepSpeed with 16-bit weights. ZeRO-1 splits the optimizer over the GPUs, ZeRO-2 also the
  gradients, ZeRO-3 also the weights; the offload variants move optimizer (and ZeRO-3 weights) to CPU.
  This is the ZeRO paper's 2 + 2 + 12 B/param accounting (Rajbhandari et al. 2020, also in XTuner's
  DeepSpeed docs: ZeRO-1 4x + 12x/N, ZeRO-2 2x + 14x/N, ZeRO-3 16x/N GB for x billion parameters).
* activations, per decoder layer and token, for a Llama-style block with SDPA/flash attention (no
  s x s score matrix is kept): both norms keep their fp32 input (2 x 4h); attention keeps q, k, v and
  its output (a(2 q_width + 2 kv_width)); a SwiGLU MLP keeps gate, up and act(gate) (3aI; a GELU MLP
  keeps aI). Layers whose weights train also keep their input (2ah for the two norm outputs, a q_width
  for o_proj, aI for down_proj); each LoRA-adapted layer keeps a 16-bit copy of its input plus a 1-byte
  dropout mask (a + 1 per input value) and its r-wide down-projection. This is the per-layer count of
  Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", eq. 1,
  34 sbh + 5as^2b for GPT) redone for RMSNorm, GQA, SwiGLU, LoRA and flash attention.
  Without gradient checkpointing all L layers are kept; with it, only each layer's input
  (a x h) plus one recomputed layer and a backward workspace; with ``model.offload_checkpoints`` the
  layer inputs go to CPU memory and only ``offload_live_layers`` of them are on the GPU at a time.
* logits, for the loss ``tunesmith.core.train.models.resolve_loss`` picks: standard: T x V in the compute dtype,
  its fp32 copy, and the loss' fp32 log-softmax (2 + 4 + 4 B); chunked (and Liger): one chunk of
  ``tunesmith.core.train.loss.chunk_tokens(V)`` tokens x V at a time (16-bit + 4 B of fp32 work); the gradient of
  the hidden states it computes in forward takes the place of the hidden states the head would keep.
  These buffers are gone before the backward pass recomputes the last layer, so only what exceeds the
  recomputed layer's tensors counts (``logits_overlap``).
* overhead: CUDA context, QLoRA's de-quantisation buffer, DeepSpeed buckets, plus a share of
  everything for allocator fragmentation.

GB in this module means GiB (2**30 bytes), the unit nvidia-smi and GPU spec sheets use ("80 GB" A100
= 81,920 MiB).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.core.config import RunConfig
from tunesmith.core.model.architecture import ArchSpec, arch_spec, human_count
from tunesmith.core.model.facts import read_config
from tunesmith.core.model.inventory import ParamInventory, param_inventory

GiB = 2 ** 30
PARTS = ("weights", "adapters", "gradients", "optimizer", "activations", "logits", "overhead")


@dataclass(frozen=True)
class MemoryParams:
    """Every constant of the estimate, in one place (bytes unless stated)."""

    nf4_bytes: float = 0.5                       # two 4-bit values per byte
    nf4_absmax_bytes: float = 4 / 64             # fp32 absmax per 64-value block (bitsandbytes blocksize 64)
    nf4_double_quant_bytes: float = 1 / 64 + 4 / (64 * 256)  # 8-bit absmax + fp32 constant per 256 blocks
    int8_bytes: float = 1.0                      # LLM.int8 weights (+ an fp32 scale per output row)
    offload_live_layers: int = 2                 # offloaded checkpoints: one in flight + one copied back
    attention_lse_bytes: int = 4                 # flash/SDPA keep an fp32 log-sum-exp per head and token
    chunked_logit_bytes: int = 4                 # chunked loss: the fp32 logits/gradient of a chunk next to its
                                                 # 16-bit copy (measured: tests/test_memory_audit.py, 6 B/logit)
    adapter_bytes: int = 4                       # peft autocast_adapter_dtype keeps LoRA weights in fp32
    optimizer_state_bytes: dict = field(default_factory=lambda: {
        "adamw_torch": 8, "adamw_torch_fused": 8, "paged_adamw_32bit": 8,  # fp32 m and v
        "adamw_8bit": 2, "paged_adamw_8bit": 2,  # 8-bit m and v (block-wise constants are negligible)
        "sgd": 0,                                # HF default momentum 0: no state
        "adafactor": 0.05,                       # factored second moment: about 4(m + n) B per m x n matrix
    })
    master_weight_bytes: int = 4                 # fp32 master copy (DeepSpeed with 16-bit weights)
    autocast_weight_copy_bytes: int = 2          # AMP's cached 16-bit copies of fp32 matmul weights
    norm_input_bytes: int = 4                    # RMSNorm/LayerNorm compute in fp32 and keep that input
    dropout_mask_bytes: int = 1                  # torch native_dropout keeps a bool mask
    logits_loss_bytes: int = 8                   # fp32 logits copy + fp32 log-softmax kept by cross-entropy
    backward_workspace_tensors: int = 2          # fp32 T x max(h, I) gradient buffers alive in a layer's backward
    cuda_context_bytes: int = int(0.5 * GiB)     # CUDA context + cuBLAS/cuDNN workspaces (not in torch's allocated)
    allocator_fraction: float = 0.05             # caching-allocator fragmentation on top of live tensors
    deepspeed_default_bucket: int = int(5e8)     # DeepSpeed reduce_bucket_size default (elements)
    zero3_live_layers: int = 2                   # ZeRO-3 keeps the current and the prefetched layer gathered


PARAMS = MemoryParams()


@dataclass
class MemoryEstimate:
    """Peak memory of one GPU, split by what holds it."""

    breakdown: dict                              # PARTS -> bytes
    details: dict = field(default_factory=dict)  # finer items (bytes) and counts behind the breakdown
    notes: list = field(default_factory=list)    # assumptions worth showing to the user
    gpu_gb: float | None = None
    setup: str = ""                              # one line: model, method, batch, GPUs

    @property
    def total(self) -> int:
        return int(sum(self.breakdown.values()))

    @property
    def total_gb(self) -> float:
        return self.total / GiB

    @property
    def allocated(self) -> int:
        """What ``torch.cuda.max_memory_allocated`` should show: the total minus context and fragmentation."""
        return self.total - int(self.details.get("cuda_context", 0)) - int(self.details.get("fragmentation", 0))

    def fits(self, gpu_gb: float | None = None) -> bool:
        gb = self.gpu_gb if gpu_gb is None else gpu_gb
        if gb is None:
            raise ValueError("fits() needs a GPU size in GB")
        return self.total <= gb * GiB

    def to_dict(self) -> dict:
        out = {"setup": self.setup, "breakdown": {k: int(v) for k, v in self.breakdown.items()},
               "total": self.total, "total_gb": round(self.total_gb, 3), "allocated": self.allocated,
               "details": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.details.items()},
               "notes": list(self.notes), "gpu_gb": self.gpu_gb}
        if self.gpu_gb is not None:
            out["fits"] = self.fits()
        return out

    def summary(self, gpu_gb: float | None = None) -> str:
        """A table of the breakdown with the total against a GPU size."""
        gb = self.gpu_gb if gpu_gb is None else gpu_gb
        lines = [self.setup] if self.setup else []
        width = max(len(p) for p in PARTS)
        for part in PARTS:
            value = self.breakdown.get(part, 0)
            share = 100 * value / self.total if self.total else 0
            why = self.details.get(part + "_why", "")
            lines.append(f"  {part:<{width}}  {value / GiB:8.2f} GB  {share:5.1f}%  {why}".rstrip())
        lines.append(f"  {'total':<{width}}  {self.total_gb:8.2f} GB")
        if gb is not None:
            margin = gb - self.total_gb
            verdict = (f"fits a {gb:g} GB GPU ({margin:.2f} GB to spare)" if margin >= 0
                       else f"does NOT fit a {gb:g} GB GPU (short by {-margin:.2f} GB)")
            lines.append(f"  -> {verdict}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---- entry points ---------------------------------------------------------------------------------

def estimate_memory(cfg: RunConfig, *, gpu_gb: float | None = None, params: MemoryParams = PARAMS) -> MemoryEstimate:
    """Estimate the peak GPU memory of ``cfg`` (reads config.json only; see the module docstring)."""
    config, _path, source = read_config(cfg.model.name_or_path)
    spec, inventory = arch_spec(config), param_inventory(config)
    est = estimate_from_spec(cfg, spec, inventory, gpu_gb=gpu_gb, params=params)
    if inventory.source != "meta device":
        est.notes.append("this architecture needs remote code, so its layers were laid out from config.json "
                         "fields as a Llama-style block (parameter counts within a few percent)")
    if source == "bundled snapshot":
        est.notes.append("model shape from Tunesmith's bundled copy of its config.json fields (not cached here)")
    est.details["config_source"] = source
    return est


def detect_gpu_gb() -> float | None:
    """Memory of the first CUDA GPU in GB (GiB), or None without one."""
    try:
        import torch

        if torch.cuda.is_available():
            return round(torch.cuda.get_device_properties(0).total_memory / GiB, 1)
    except Exception:  # no usable torch/CUDA: no GPU to report
        pass
    return None


# ---- the arithmetic ------------------------------------------------------------------------------

def deepspeed_settings(name_or_path: str, hidden: int, params: MemoryParams = PARAMS) -> dict:
    """ZeRO stage, offloads and bucket size of a DeepSpeed preset name or JSON path ({} for none).

    >>> deepspeed_settings("", 64)
    {'stage': 0, 'offload_optimizer': False, 'offload_param': False, 'bucket': 0, 'overlap_comm': False}
    """
    settings = {"stage": 0, "offload_optimizer": False, "offload_param": False, "bucket": 0, "overlap_comm": False}
    if not name_or_path:
        return settings
    from tunesmith.core.config import DEEPSPEED_PRESETS
    from tunesmith.core.paths import presets_dir

    name = name_or_path.removeprefix("deepspeed_")
    path = presets_dir() / "deepspeed" / f"{name}.json" if name in DEEPSPEED_PRESETS else None
    zero = {}
    try:
        source = path if path is not None else Path(name_or_path).expanduser()
        zero = json.loads(source.read_text(encoding="utf-8")).get("zero_optimization") or {}
    except (OSError, ValueError, AttributeError):
        if name in DEEPSPEED_PRESETS:  # the preset JSON is not there yet: its name says enough
            zero = {"stage": int(name[4]), "overlap_comm": True, "reduce_bucket_size": "auto"}
            if name.endswith("offload"):
                zero["offload_optimizer"] = {"device": "cpu"}
                if zero["stage"] == 3:
                    zero["offload_param"] = {"device": "cpu"}
    bucket = zero.get("reduce_bucket_size", params.deepspeed_default_bucket)
    settings.update(
        stage=int(zero.get("stage", 0) or 0),
        offload_optimizer=(zero.get("offload_optimizer") or {}).get("device", "none") in ("cpu", "nvme"),
        offload_param=(zero.get("offload_param") or {}).get("device", "none") in ("cpu", "nvme"),
        bucket=hidden * hidden if bucket == "auto" else int(float(bucket)),
        overlap_comm=bool(zero.get("overlap_comm", False)),
    )
    return settings


def estimate_from_spec(cfg: RunConfig, spec: ArchSpec, inv: ParamInventory, *, gpu_gb: float | None = None,
                       params: MemoryParams = PARAMS) -> MemoryEstimate:
    """The estimate for known architecture numbers (pure arithmetic; see the module docstring)."""
    from tunesmith.core.memory.parts import activation_bytes, model_state_bytes

    p = params
    precision = "bf16" if cfg.training.precision == "auto" else cfg.training.precision
    a = 4 if precision == "fp32" else 2
    world = cfg.world_size
    ds = deepspeed_settings(cfg.distributed.deepspeed, spec.hidden, p)
    pair = 2 if cfg.method.stage in ("dpo", "orpo") else 1
    tokens = cfg.training.batch_size * cfg.data.max_length * pair

    details, notes = {}, []
    state = model_state_bytes(cfg, spec, inv, precision=precision, world=world, ds=ds, params=p,
                              details=details, notes=notes)
    activations = activation_bytes(cfg, spec, inv, tokens=tokens, a=a, params=p, details=details)
    logits = logits_bytes(cfg, spec, tokens=tokens, a=a, params=p, details=details)
    # The loss' buffers are freed before the backward pass reaches the last decoder layer, so at the peak
    # either they or the recomputed layer's tensors are alive, not both (measured: bench/memory_audit.py).
    if cfg.model.gradient_checkpointing:
        transient = activations - details.get("activation_checkpoints", 0) - details.get("attention_mask", 0)
        overlap = min(logits, max(0, transient))
        details["logits_total"], details["logits_overlap"] = int(logits), int(overlap)
        if overlap:
            details["logits_why"] += f" ({overlap / GiB:.2f} GB freed before the recomputed layer's peak)"
        logits -= overlap

    dynamic = sum(state.values()) + activations + logits + details.get("dequant_buffer", 0) \
        + details.get("deepspeed_buffers", 0)
    fragmentation = int(p.allocator_fraction * dynamic)
    details["cuda_context"] = p.cuda_context_bytes
    details["fragmentation"] = fragmentation
    overhead = p.cuda_context_bytes + fragmentation + details.get("dequant_buffer", 0) \
        + details.get("deepspeed_buffers", 0)
    details["overhead_why"] = "CUDA context, allocator" + (", 4-bit de-quantisation" if cfg.method.finetuning
                                                           == "qlora" else "") + \
        (", DeepSpeed buckets" if details.get("deepspeed_buffers") else "")

    breakdown = {**state, "activations": activations, "logits": logits, "overhead": overhead}
    breakdown = {k: int(breakdown[k]) for k in PARTS}
    if not cfg.data.pack:
        notes.append("packing is off: the estimate assumes every sequence is padded to max_length (worst case)")
    method = {"qlora": f"QLoRA {cfg.quantization.bits}-bit r={cfg.lora.r}", "lora": f"LoRA r={cfg.lora.r}",
              "full": "full fine-tune"}[cfg.method.finetuning]
    gpus = f"{world} GPU{'s' if world > 1 else ''}" + (f", ZeRO-{ds['stage']}" if ds.get("stage") else "") + \
        (" offload" if ds.get("offload_optimizer") else "")
    setup = (f"{spec.architecture or spec.model_type} ({human_count(inv.total)} params), {method}, {precision}, "
             f"batch {cfg.training.batch_size} x {cfg.data.max_length} tokens"
             f"{' x 2 (chosen+rejected)' if pair == 2 else ''}, gradient checkpointing "
             f"{'on' if cfg.model.gradient_checkpointing else 'off'}, {gpus}")
    return MemoryEstimate(breakdown=breakdown, details=details, notes=notes, gpu_gb=gpu_gb, setup=setup)


def logits_bytes(cfg: RunConfig, spec: ArchSpec, *, tokens: int, a: int, params: MemoryParams, details: dict) -> int:
    """The loss' logits memory for the loss the trainer picks (tunesmith.core.train.models.resolve_loss, on a GPU)."""
    from tunesmith.core.train.loss import chunk_tokens
    from tunesmith.core.train.models import resolve_loss

    p = params
    impl = resolve_loss(cfg, cuda=True)
    details["loss"] = impl
    sixteen = a if a < 4 else 0
    if impl == "standard":
        details["logits_why"] = f"{tokens:,} tokens x {spec.vocab:,} vocab"
        return tokens * spec.vocab * (sixteen + p.logits_loss_bytes)
    chunk = chunk_tokens(spec.vocab, tokens)
    # both keep the hidden states' gradient from their forward (T x h x a) in place of the hidden states
    # the standard head keeps, which the activations' head term already counts
    kept = 0
    details["logits_why"] = f"{impl} loss: {chunk:,} of {tokens:,} tokens x {spec.vocab:,} vocab at a time"
    return chunk * spec.vocab * (sixteen + p.chunked_logit_bytes) + kept


def replace_params(**changes) -> MemoryParams:
    """A copy of :data:`PARAMS` with some constants changed (for calibration experiments)."""
    return dataclasses.replace(PARAMS, **changes)
