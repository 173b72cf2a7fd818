"""Memory audit: one real QLoRA training step, bytes measured per component, next to the estimate.

For each shape (the true hidden size, MLP width, heads and vocabulary of Llama-2-7B, InternLM2.5-7B and
Qwen2-7B, but only 2 decoder layers, random weights), the model is saved, loaded by the trainer's own
``load_model`` (bitsandbytes nf4 + double quant on CPU, frozen weights bf16, LoRA r 64 on all linear
layers, dropout 0.1, gradient checkpointing) and trained with the trainer's loss (chunked cross-entropy)
and optimizer (bitsandbytes 8-bit AdamW: ``paged_adamw_8bit`` without CUDA) under bf16 autocast, on a
packed batch of ``--seq`` tokens. Measured:

* weights (4-bit storage + quantisation constants; everything else), adapters, gradients, optimizer
  states: the bytes of those tensors after the step;
* checkpoints: the storages of the decoder layers' inputs; recomputed layer: the unique storages a
  decoder layer saves for backward (``torch.autograd.graph.saved_tensors_hooks`` over an uncheckpointed
  forward, parameters excluded), the largest layer;
* loss buffers: the live-tensor peak of the loss' forward + backward alone, over its inputs;
* peak: the live-tensor peak of the whole second step (a ``TorchDispatchMode`` that sees every tensor an
  op creates and watches its storage until freed) plus the bytes alive before it (weights, adapters,
  optimizer states) -- what ``torch.cuda.max_memory_allocated`` would show.

Each is printed next to the estimator's figure for the same 2-layer config (``tunesmith.core.memory`` on that
config.json), with the ratio; the estimate for the real 32/28-layer model follows, against the
issue's targets. The CPU audit cannot see the CUDA context, the allocator's fragmentation or cuBLAS
workspaces: those overhead terms are the estimator's assumptions, unchanged (docs/benchmarks.md).

    python bench/memory_audit.py [--seq 512] [--shapes llama2_7b internlm2_5_7b qwen2_7b]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = {  # config.json fields of the real models (InternLM2.5 laid out as the Llama block it is)
    "llama2_7b": {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
                  "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32,
                  "vocab_size": 32000, "rms_norm_eps": 1e-5, "preset": "llama2_7b_chat_qlora_alpaca_e3"},
    "internlm2_5_7b": {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
                       "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
                       "vocab_size": 92544, "rms_norm_eps": 1e-5, "preset": "internlm2_5_chat_7b_qlora_alpaca_e3"},
    "qwen2_7b": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584,
                 "intermediate_size": 18944, "num_attention_heads": 28, "num_key_value_heads": 4,
                 "vocab_size": 152064, "rms_norm_eps": 1e-6, "preset": "qwen2_7b_instruct_qlora_alpaca_e3"},
}
TARGETS_GB = {"llama2_7b_chat_qlora_alpaca_e3": 6.5, "internlm2_5_chat_7b_qlora_alpaca_e3": 7.5,
              "qwen2_7b_instruct_qlora_alpaca_e3": 7.5, "llama3_8b_instruct_qlora_alpaca_e3": 7.5,
              "mixtral_8x7b_instruct_qlora_oasst1_e3": 30.0}
COMPONENTS = ("weights_quantized", "weights_other", "adapters", "gradients", "optimizer", "checkpoints",
              "recomputed_layer", "loss_buffers", "peak")


# ---- live-tensor tracking ----------------------------------------------------------------------------

def _storage_key(t):
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


class LiveTensors:
    """A TorchDispatchMode that tracks every storage an op creates until it is freed; ``peak`` in bytes.

    Storages that existed before (weights, optimizer states) are not counted: add them yourself.
    """

    def __init__(self, known=()):
        from torch.multiprocessing.reductions import StorageWeakRef
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self
        self.known = set(known)
        self.live: dict = {}
        self.current = self.peak = 0
        self._ops = 0

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker._see(out, StorageWeakRef)
                return out

        self.mode = Mode()

    def _see(self, out, weakref_cls):
        import torch

        tensors = [out] if isinstance(out, torch.Tensor) else \
            [t for t in (out if isinstance(out, (tuple, list)) else ()) if isinstance(t, torch.Tensor)]
        self._ops += 1
        if self._ops % 8 == 0 or tensors:
            for key, (ref, nbytes) in list(self.live.items()):
                if ref.expired():
                    del self.live[key]
                    self.current -= nbytes
        for t in tensors:
            if t.device.type == "meta":
                continue
            key = _storage_key(t)
            if key[1] == 0 or key in self.live or key[0] in self.known:
                continue
            self.live[key] = (weakref_cls(t.untyped_storage()), key[1])
            self.current += key[1]
        self.peak = max(self.peak, self.current)

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


# ---- the model and the step ----------------------------------------------------------------------------

def make_model(out_dir: Path, shape: dict, layers: int) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {k: v for k, v in shape.items() if k != "preset"}
    fields.update(num_hidden_layers=layers, max_position_embeddings=4096, tie_word_embeddings=False,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    config = AutoConfig.for_model(fields.pop("model_type"), **{k: v for k, v in fields.items()
                                                              if k != "architectures"})
    config.architectures = shape["architectures"]
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # build in bf16: the fp32 model of a 152k vocabulary is 6 GB
    try:
        model = AutoModelForCausalLM.from_config(config)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(out_dir)
    del model
    return json.loads((out_dir / "config.json").read_text())


def run_config(model_dir: Path, seq: int, **extra):
    from tunesmith.core.config import RunConfig

    overrides = ["method.finetuning=qlora", "training.precision=bf16", "model.gradient_checkpointing=true",
                 "model.offload_checkpoints=false", "training.optimizer=paged_adamw_8bit", "training.loss=auto",
                 "lora.r=64", "lora.alpha=16", "lora.dropout=0.1", "training.batch_size=1",
                 f"data.max_length={seq}", "data.pack=true"]
    overrides += [f"{k}={v}" for k, v in extra.items()]
    cfg = RunConfig()
    cfg.model.name_or_path = str(model_dir)
    return cfg.with_overrides(overrides)


def packed_batch(vocab: int, seq: int, samples: int = 4):
    import torch

    from tunesmith.core.train.collate import PackedCollator

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (seq,), generator=g).tolist()
    cuts = [round(i * seq / samples) for i in range(samples + 1)]
    pos = [p for a, b in zip(cuts, cuts[1:]) for p in range(b - a)]
    labels = list(ids)
    for a, b in zip(cuts, cuts[1:]):  # the prompt half of each sample is masked, as templated data is
        labels[a:a + (b - a) // 3] = [-100] * ((b - a) // 3)
    batch = PackedCollator(pad_token_id=0)([{"input_ids": ids, "labels": labels, "position_ids": pos}])
    batch.pop("num_tokens")
    batch.pop("use_cache")
    return batch


def _bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        key = _storage_key(t)
        if key not in seen:
            seen.add(key)
            total += key[1]
    return total


def _quant_state_tensors(param):
    import torch

    qs = getattr(param, "quant_state", None)
    out = []
    while qs is not None:
        out += [v for v in (qs.absmax, qs.code, getattr(qs, "offset", None)) if isinstance(v, torch.Tensor)]
        qs = getattr(qs, "state2", None)
    return out


def audit(model_dir: Path, config: dict, seq: int) -> dict:
    """Measured bytes per component for one training step (the second: optimizer states exist)."""
    import torch

    from tunesmith.core.train.loss import chunked_causal_lm_loss, output_head
    from tunesmith.core.train.models import load_model, resolve_optimizer

    cfg = run_config(model_dir, seq)
    torch.manual_seed(0)
    model = load_model(cfg)
    model.train()
    base = model.get_base_model()
    params = list(model.named_parameters())
    quant = [p for _, p in params if p.__class__.__name__ == "Params4bit"]
    quant_tensors = [t for p in quant for t in [p] + _quant_state_tensors(p)]
    others = [p for _, p in params if not p.requires_grad and p.__class__.__name__ != "Params4bit"]
    adapters = [p for _, p in params if p.requires_grad]
    import bitsandbytes as bnb

    assert resolve_optimizer(cfg, cuda=False) == "adamw_8bit"
    opt = bnb.optim.AdamW8bit(adapters, lr=1e-4)
    batch = packed_batch(config["vocab_size"], seq)
    _decoder, head_weight = output_head(model)
    head = base.get_output_embeddings()

    def step(track=None):
        captured = []

        def keep(hidden):
            captured.append(hidden)
            return hidden[..., :0]

        head.forward = keep
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(**{k: v for k, v in batch.items() if k != "labels"})
                loss = chunked_causal_lm_loss(captured[0], head_weight, batch["labels"])
        finally:
            del head.forward
        captured.clear()
        loss.backward()
        grads = _bytes([p.grad for p in adapters if p.grad is not None])
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach()), grads

    first_loss, _ = step()
    states = [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    static = _bytes(quant_tensors) + _bytes(others) + _bytes(adapters) + _bytes(states)
    known = {_storage_key(t)[0] for t in quant_tensors + others + adapters + states}
    t0 = time.perf_counter()
    with LiveTensors(known) as live:
        second_loss, grads = step()
    step_s = time.perf_counter() - t0

    # checkpoints and one layer's saved tensors: an uncheckpointed forward, saved-tensor hooks per layer
    layers = [m for m in base.modules() if m.__class__.__name__.endswith("DecoderLayer")]
    param_ptrs = {p.untyped_storage().data_ptr() for _, p in params} | {t.untyped_storage().data_ptr()
                                                                       for t in quant_tensors}
    inputs, saved, detail, where = [], {}, {}, [None]

    def pre(mod, args, kwargs):
        where[0] = mod
        hidden = args[0] if args else kwargs["hidden_states"]
        inputs.append(_storage_key(hidden))

    def post(mod, args, kwargs, out):
        where[0] = None

    hooks = [m.register_forward_pre_hook(pre, with_kwargs=True) for m in layers] + \
        [m.register_forward_hook(post, with_kwargs=True) for m in layers]

    def pack(t):
        key = _storage_key(t)
        if where[0] is not None and key[0] not in param_ptrs and key not in inputs:
            saved.setdefault(id(where[0]), {})[key] = key[1]
            detail.setdefault(id(where[0]), {})[key] = (tuple(t.shape), str(t.dtype).removeprefix("torch."))
        return t

    for m in layers:
        m.gradient_checkpointing = False
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
            head.forward = lambda hidden: hidden[..., :0]
            model(**{k: v for k, v in batch.items() if k != "labels"})
    finally:
        del head.forward
        for h in hooks:
            h.remove()
        for m in layers:
            m.gradient_checkpointing = True
    per_layer = max(sum(v.values()) for v in saved.values())
    biggest = max(saved, key=lambda k: sum(saved[k].values()))
    checkpoints = sum(nbytes for _ptr, nbytes in inputs)

    # the loss alone: peak of live tensors over its inputs (hidden states of the final norm, bf16)
    hidden = torch.randn(1, seq, config["hidden_size"], dtype=torch.bfloat16, requires_grad=True)
    with LiveTensors({_storage_key(hidden)[0], _storage_key(head_weight)[0]}) as loss_live:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = chunked_causal_lm_loss(hidden, head_weight, batch["labels"])
        loss.backward()
    loss_buffers = loss_live.peak - _bytes([hidden.grad])  # the gradient w.r.t. hidden is the backward's

    return {"weights_quantized": _bytes(quant_tensors), "weights_other": _bytes(others),
            "adapters": _bytes(adapters), "gradients": grads, "optimizer": _bytes(states),
            "checkpoints": checkpoints, "recomputed_layer": per_layer, "loss_buffers": loss_buffers,
            "peak": static + live.peak, "losses": (first_loss, second_loss), "step_s": step_s,
            "layer_saved": sorted(detail[biggest].values(), key=str)}


def estimated(model_dir: Path, config: dict, seq: int) -> dict:
    """The estimator's figures for the same config.json and run settings, split like :func:`audit`."""
    from tunesmith.core.memory import estimate_from_spec, replace_params
    from tunesmith.core.model import arch_spec
    from tunesmith.core.model import param_inventory

    cfg = run_config(model_dir, seq)
    # One CPU-only difference, set here and nowhere else: torch's CPU dropout keeps its fp32 noise tensor
    # (4 B per value) where CUDA's fused dropout keeps a 1-byte mask.
    est = estimate_from_spec(cfg, arch_spec(config), param_inventory(config),
                             params=replace_params(dropout_mask_bytes=4))
    d, b = est.details, est.breakdown
    return {"weights_quantized": d["weights_quantized"], "weights_other": d["weights_unquantized"],
            "adapters": b["adapters"], "gradients": b["gradients"], "optimizer": b["optimizer"],
            "checkpoints": d["activation_checkpoints"], "recomputed_layer": d["activation_layer"],
            "loss_buffers": d.get("logits_total", b["logits"]), "peak": est.allocated}


def compare(name: str, measured: dict, estimate: dict) -> list[str]:
    lines = [f"{name}: 2 layers, loss {measured['losses'][0]:.3f} -> {measured['losses'][1]:.3f}, "
             f"step {measured['step_s']:.1f} s (with tracking)",
             f"  {'component':<18}{'measured MiB':>14}{'estimate MiB':>14}{'ratio':>8}"]
    for c in COMPONENTS:
        m, e = measured[c], estimate[c]
        lines.append(f"  {c:<18}{m / 2**20:14.1f}{e / 2**20:14.1f}{(e / m if m else float('nan')):8.3f}")
    return lines


def preset_lines(seq_note: str) -> list[str]:
    from tunesmith.core.memory import estimate_memory, fit_to_gpu
    from tunesmith.core.presets import load_config

    out = [f"Estimates at XTuner's defaults (r 64, all linear, 2048 packed, batch 1), full depth{seq_note}:"]
    for name, target in TARGETS_GB.items():
        cfg = load_config(name)
        est = estimate_memory(cfg)
        verdict = "ok" if est.total_gb <= target else f"over by {est.total_gb - target:.2f} GB"
        line = f"  {name:<40} {est.total_gb:6.2f} GB  target <= {target:g}  {verdict}"
        if est.details.get("refused"):
            line += "  (the trainer refuses: " + est.details["refused"] + ")"
        out.append(line)
        if target <= 7.5:
            try:
                fitted, changes = fit_to_gpu(cfg, 8)
                out.append(f"      Fit to 8 GB: r {fitted.lora.r}; " + ("; ".join(changes) or "no change needed"))
            except Exception as exc:  # CannotFit: say so
                out.append(f"      Fit to 8 GB: cannot fit ({exc})")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--shapes", nargs="*", default=list(SHAPES))
    args = ap.parse_args(argv)
    import torch

    import tunesmith.core.memory  # noqa: F401  (the estimator as it is now, not as edited while this runs)
    import tunesmith.core.memory.parts  # noqa: F401
    import tunesmith.core.train.loss  # noqa: F401

    print(f"memory audit, seq {args.seq}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    worst = 0.0
    for name in args.shapes:
        with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
            model_dir = Path(tmp)
            config = make_model(model_dir, SHAPES[name], args.layers)
            measured = audit(model_dir, config, args.seq)
            est = estimated(model_dir, config, args.seq)
        for line in compare(name, measured, est):
            print(line, flush=True)
        worst = max(worst, max(abs(est[c] / measured[c] - 1) for c in COMPONENTS if measured[c]))
    print(f"worst component deviation: {100 * worst:.1f}%")
    for line in preset_lines(""):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
