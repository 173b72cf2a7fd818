"""The arithmetic behind :mod:`tunesmith.core.memory`: model states (weights, adapters, gradients, optimizer) and
activations. Formulas and their sources are described in core/memory/estimate.py's docstring; constants
come from :class:`tunesmith.core.memory.MemoryParams`.
"""

from __future__ import annotations

from tunesmith.core.model.architecture import ArchSpec, human_count
from tunesmith.core.model.inventory import ParamInventory
from tunesmith.core.train.models import embeddings_offloaded, parameter_dtypes

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def moe_refusal_text(cfg, spec: ArchSpec, inv: ParamInventory) -> str | None:
    """tunesmith.core.train.models.moe_refusal's answer from the numbers the estimate already has."""
    if cfg.method.finetuning != "qlora" or not spec.experts or inv.other <= 0.2 * inv.total:
        return None
    return (f"its {spec.experts} experts per layer are fused 3-D tensors in this transformers version, not "
            f"nn.Linear layers, and bitsandbytes quantises only nn.Linear: {human_count(inv.other)} expert "
            f"parameters would stay 16-bit")


def model_state_bytes(cfg, spec: ArchSpec, inv: ParamInventory, *, precision: str, world: int, ds: dict, params,
                      details: dict, notes: list) -> dict:
    """GPU bytes of weights / adapters / gradients / optimizer for one GPU.

    Also fills ``details`` (CPU-offloaded bytes, DeepSpeed buckets, de-quantisation buffer, counts).
    """
    p = params
    a = 4 if precision == "fp32" else 2
    method = cfg.method.finetuning
    n_params = inv.total
    stage = ds.get("stage", 0)
    deepspeed = bool(stage) or bool(cfg.distributed.deepspeed)
    opt_state = p.optimizer_state_bytes.get(cfg.training.optimizer, 8)

    # -- weights
    if method == "qlora":
        q = cfg.quantization
        if q.bits == 4:
            per = p.nf4_bytes + (p.nf4_double_quant_bytes if q.double_quant else p.nf4_absmax_bytes)
            kind = q.quant_type + (" + double quant" if q.double_quant else "")
        else:
            per, kind = p.int8_bytes, "int8"
        frozen = parameter_dtypes(cfg, precision)["frozen"]  # what load_model stores
        rest_bytes = DTYPE_BYTES[frozen]
        quantized, rest = inv.linear * per, (n_params - inv.linear) * rest_bytes
        weights = quantized + rest
        details["weights_quantized"], details["weights_unquantized"] = int(quantized), int(rest)
        details["weights_why"] = (f"{human_count(inv.linear)} in {kind} ({per:.3f} B/param), "
                                  f"{human_count(n_params - inv.linear)} others in {frozen}")
        refusal = moe_refusal_text(cfg, spec, inv)
        if refusal:
            details["refused"] = refusal
            notes.append(f"the trainer refuses this QLoRA run: {refusal}; shown is what it would need")
    elif method == "lora":
        weights = n_params * a
        details["weights_why"] = f"{human_count(n_params)} frozen in {precision}"
    elif deepspeed or precision == "fp32":
        weights = n_params * a
        details["weights_why"] = f"{human_count(n_params)} in {precision}"
    else:  # HF Trainer AMP: fp32 weights + autocast's cached 16-bit copies of the matmul weights
        copies = (inv.linear + inv.lm_head) * p.autocast_weight_copy_bytes
        weights = n_params * 4 + copies
        details["autocast_weight_copies"] = int(copies)
        details["weights_why"] = f"{human_count(n_params)} in fp32 + {precision} autocast copies"
    if method != "full" and embeddings_offloaded(cfg, {"tie_word_embeddings": spec.tied_embeddings,
                                                       "model_type": spec.model_type}):
        host = inv.embedding * (rest_bytes if method == "qlora" else a)
        weights -= host
        details["embeddings_on_cpu"] = int(host)
        details["weights_why"] += f"; the {human_count(inv.embedding)} input embeddings in CPU memory"
    if cfg.method.stage == "dpo" and method == "full":
        weights += n_params * a
        details["reference_model"] = n_params * a
        notes.append("full-parameter DPO keeps a frozen reference copy of the model")

    # -- trainable parameters, gradients, optimizer
    if cfg.uses_lora:
        trainable = inv.lora_params(cfg.lora.r, cfg.lora.target_modules, dora=cfg.lora.use_dora)
        param_b = 2 if (deepspeed and a == 2) else p.adapter_bytes  # DeepSpeed casts the module to 16-bit
        adapters = trainable * param_b
        grad_b = param_b
        details["adapters_why"] = (f"{human_count(trainable)} LoRA params in fp{8 * param_b}"
                                   + (" (trained in fp32: small, and no 16-bit rounding of updates)"
                                      if param_b == 4 else ""))
    else:
        trainable = n_params
        adapters = 0
        grad_b = a if (deepspeed or precision == "fp32") else 4
    master = p.master_weight_bytes if (deepspeed and a == 2) else 0
    details["trainable_params"] = int(trainable)
    gradients = trainable * grad_b
    optimizer = trainable * (opt_state + master)
    details["gradients_why"] = f"{human_count(trainable)} x {grad_b} B"
    details["optimizer_why"] = f"{cfg.training.optimizer}: {opt_state:g} B/param" + (" + fp32 master" if master else "")
    if world > 1 and not stage:
        details["ddp_buckets"] = int(gradients)
        gradients *= 2
        details["gradients_why"] += " + DDP bucket copy"

    # -- ZeRO partitioning and offload
    cpu = 0
    if stage >= 1:
        optimizer /= world
    if stage >= 2:
        gradients /= world
    if stage >= 3:
        weights /= world
        if cfg.uses_lora:
            adapters /= world
    if ds.get("offload_optimizer"):
        cpu += optimizer + (gradients if stage >= 2 else 0)
        optimizer = 0
        if stage >= 2:
            gradients = 0
    if stage >= 3:
        live = p.zero3_live_layers * (n_params / max(1, spec.layers)) * (weights * world / max(1, n_params))
        if ds.get("offload_param"):
            cpu += weights
            weights = 0
        weights += live
        details["zero3_gathered_layers"] = int(live)
    if stage:
        partitions = "optimizer" + (", gradients" if stage >= 2 else "") + (", weights" if stage >= 3 else "")
        notes.append(f"ZeRO-{stage} splits the {partitions} over {world} GPU{'s' if world > 1 else ''}"
                     + (" and offloads to CPU" if cpu else ""))
        # ZeRO-1/2 allocate reduce_bucket_size-element gradient buckets (two with overlap_comm; ZeRO-1 in fp32);
        # ZeRO-3 one reduce bucket in the parameter dtype.
        bucket_bytes = 4 if stage == 1 else a
        copies = 2 if (ds.get("overlap_comm") and stage < 3) else 1
        buffers = ds.get("bucket", 0) * bucket_bytes * copies
        details["deepspeed_buffers"] = int(buffers)
    details["cpu_offloaded"] = int(cpu + details.get("embeddings_on_cpu", 0))

    # -- transient full-size weight buffers
    dequant = inv.largest_linear * a if method == "qlora" else 0
    if cfg.uses_lora and cfg.lora.use_dora:
        dequant += inv.largest_linear * 4  # DoRA materialises W + BA (fp32) to take its norm
    if dequant:
        details["dequant_buffer"] = int(dequant)
    return {"weights": weights, "adapters": adapters, "gradients": gradients, "optimizer": optimizer}


def activation_bytes(cfg, spec: ArchSpec, inv: ParamInventory, *, tokens: int, a: int, params, details: dict) -> int:
    """Activation bytes of one micro-batch of ``tokens`` tokens at the backward pass' peak."""
    p = params
    h, L, I = spec.hidden, spec.layers, spec.active_mlp_width
    q, kv = spec.q_width, spec.kv_width
    full = cfg.method.finetuning == "full"
    # the residual stream has the dtype of the frozen norms/embeddings (bf16 now that nothing is upcast)
    stream = a

    norms = 2 * p.norm_input_bytes * h
    # flash-attention takes k/v at their GQA width; transformers' SDPA path repeats them to every query
    # head when there is a mask (packed batches), and that mask is a batch x T x T 16-bit tensor
    flash = attention_kernel(cfg) == "flash_attention_2"
    kv_kept = kv if flash else q
    attention = a * (2 * q + 2 * kv_kept) + p.attention_lse_bytes * spec.heads
    mlp = a * (3 * I if spec.gated_mlp else I)
    if spec.experts:  # tokens are gathered into each chosen expert and scattered back
        mlp += 2 * a * h * spec.experts_per_token
    inputs = a * (2 * h + q + I) if full else 0
    lora = 0.0
    if cfg.uses_lora:
        mask = p.dropout_mask_bytes if cfg.lora.dropout > 0 else 0
        targets = cfg.lora.target_modules
        lora = inv.lora_input_width(targets, L) * (a + mask) + inv.lora_rank_outputs(targets, L) * cfg.lora.r * a
        if a == 2 and not cfg.distributed.deepspeed:
            # autocast's 16-bit copies of a layer's fp32 adapters, saved for the backward
            copies = inv.lora_params(cfg.lora.r, targets, dora=cfg.lora.use_dora) / max(1, L) * a
            details["activation_adapter_copies"] = int(copies)
    per_layer = norms + attention + mlp + inputs + lora
    head = p.norm_input_bytes * h + a * h  # the final norm's fp32 input, the output head's 16-bit input
    workspace = p.backward_workspace_tensors * max(h, I, q + 2 * kv) * 4
    if cfg.model.gradient_checkpointing:
        kept = L
        if cfg.model.offload_checkpoints:
            kept = min(L, p.offload_live_layers)
            details["checkpoints_on_cpu"] = int(tokens * (L - kept) * stream * h)
        per_token = kept * stream * h + per_layer + head + workspace
        details["activation_checkpoints"] = int(tokens * kept * stream * h)
        where = f"checkpoints {L} x {stream}h" if kept == L else \
            f"checkpoints {L} x {stream}h in CPU memory ({kept} on the GPU)"
        details["activations_why"] = f"{where} + 1 recomputed layer ({per_layer / 1024:.0f} KiB/token)"
    else:
        per_token = L * per_layer + head + workspace
        details["activations_why"] = f"{L} layers x {per_layer / 1024:.0f} KiB/token"
    details["activation_bytes_per_token_per_layer"] = int(per_layer)
    copies = details.get("activation_adapter_copies", 0)
    details["activation_layer"] = int(tokens * per_layer + copies)
    extra = copies * (1 if cfg.model.gradient_checkpointing else L)
    if not flash and cfg.data.pack:
        details["attention_mask"] = int(tokens * cfg.data.max_length * a)
        extra += details["attention_mask"]
    details["tokens_per_micro_batch"] = tokens
    return int(tokens * per_token + extra)


def attention_kernel(cfg) -> str:
    """The attention the trainer will use on a GPU (tunesmith.core.train.models.resolve_attn, without asking for CUDA)."""
    import importlib.util

    want = cfg.model.attn_implementation
    if want != "auto":
        return want
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") is not None else "sdpa"
