"""GPU check (bench/gpu_check.sh runs it): Llama-2-7B-shaped QLoRA at XTuner's defaults, measured.

Steps, each its own process so one run's cached memory never shows in the other's figures:

    python bench/gpu_check.py make DIR          # random-weight Llama-2-7B shape saved to DIR (no download)
    python bench/gpu_check.py run DIR ours      # our engine: load_model + our Trainer (chunked loss, ...)
    python bench/gpu_check.py run DIR baseline  # plain HF Trainer + PEFT + bitsandbytes, same batches
    python bench/gpu_check.py report DIR        # peak vs the estimate, tokens/s ratio

Both runs: nf4 + double quant, bf16, LoRA r 64 / alpha 16 / dropout 0.1 on all linear layers, batch 1 x
2048 packed tokens, gradient checkpointing, paged 8-bit AdamW, identical batches (our collator's). The
baseline is the usual recipe: ``prepare_model_for_kbit_training`` (which upcasts the frozen non-4-bit
weights to fp32) and the standard loss. Measured: ``torch.cuda.max_memory_allocated``, the process's
memory in nvidia-smi, and tokens/s over the steps after two warm-up steps.

``--dry-run`` does the same on the CPU with a tiny model (the tests run it), without CUDA figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LLAMA2_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32,
             "num_hidden_layers": 32, "vocab_size": 32000, "rms_norm_eps": 1e-5, "max_position_embeddings": 4096}
TINY = {"hidden_size": 128, "intermediate_size": 344, "num_attention_heads": 2, "num_key_value_heads": 1,
        "num_hidden_layers": 2, "vocab_size": 1024, "rms_norm_eps": 1e-5, "max_position_embeddings": 1024}
WARMUP = 2


def settings(dry: bool) -> dict:
    return {"seq": 128 if dry else 2048, "steps": WARMUP + (2 if dry else 6), "shape": TINY if dry else LLAMA2_7B}


def make(out: Path, dry: bool) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = settings(dry)["shape"]
    config = LlamaConfig(**shape, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() and not dry else "cpu"
    with torch.device(device):
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            model = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(default)
    model.save_pretrained(out)
    (out / "gpu_check.json").write_text(json.dumps({"dry": dry}))


def run_config(model_dir: Path, dry: bool):
    from tunesmith.core.config import RunConfig

    s = settings(dry)
    cfg = RunConfig()
    cfg.model.name_or_path = str(model_dir)
    # the QLoRA preset's settings (presets/llama2_7b_chat_qlora_alpaca_e3.yaml), one step per micro-batch
    return cfg.with_overrides([
        "method.finetuning=qlora", "lora.r=64", "lora.alpha=16", "lora.dropout=0.1",
        "model.gradient_checkpointing=true",
        "model.offload_checkpoints=true", "model.offload_embeddings=true", "training.optimizer=paged_adamw_8bit",
        "training.loss=auto",
        "training.batch_size=1", "training.gradient_accumulation=1", f"data.max_length={s['seq']}", "data.pack=true",
        "training.precision=" + ("fp32" if dry else "bf16"), "training.learning_rate=2e-4"])


def batches(vocab: int, seq: int, n: int) -> list[dict]:
    import torch

    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (seq,), generator=g).tolist()
        cut = seq // 3
        pos = list(range(cut)) + list(range(seq - cut))
        rows.append({"input_ids": ids, "labels": ids, "position_ids": pos})
    return rows


class Timer:
    def __init__(self):
        from transformers import TrainerCallback

        timer = self
        self.times = []

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                timer.times.append(time.perf_counter() - timer._start)

        self.callback = CB()


def _args(out: Path, cfg, dry: bool, steps: int, ours: bool):
    from transformers import TrainingArguments

    from tunesmith.core.train.models import resolve_optimizer

    gc = cfg.model.gradient_checkpointing and not (ours and cfg.model.offload_checkpoints)
    return TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=1, gradient_accumulation_steps=1, max_steps=steps,
        learning_rate=cfg.training.learning_rate, lr_scheduler_type="constant", optim=resolve_optimizer(cfg),
        bf16=not dry, use_cpu=dry, save_strategy="no", logging_strategy="no", report_to="none",
        disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
        activation_checkpointing=gc, activation_checkpointing_kwargs={"use_reentrant": False} if gc else None)


def run(model_dir: Path, which: str) -> dict:
    import torch
    from transformers import Trainer

    from tunesmith.core.train.collate import PackedCollator

    dry = json.loads((model_dir / "gpu_check.json").read_text())["dry"]
    s = settings(dry)
    cfg = run_config(model_dir, dry)
    cuda = torch.cuda.is_available() and not dry
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    t_load = time.perf_counter()
    if which == "ours":
        from tunesmith.core.train.models import load_model, resolve_loss
        from tunesmith.core.train.trainer import with_run_mixin

        model = load_model(cfg)
        loss_impl = resolve_loss(cfg)
        trainer_cls = with_run_mixin(Trainer, logit_free_loss=loss_impl != "standard")
    else:
        from peft import prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        from tunesmith.core.train.models import add_lora

        dtype = torch.float32 if dry else torch.bfloat16
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_storage=dtype)
        model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=quant, dtype=dtype,
                                                     device_map={"": 0 if cuda else "cpu"})
        model.config.use_cache = False
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
        model = add_lora(model, cfg)
        loss_impl, trainer_cls = "standard", Trainer
    load_s = time.perf_counter() - t_load
    timer = Timer()
    packed = PackedCollator(0)

    def collate(rows):  # identical batches for both; the plain Trainer would pass num_tokens to the model
        batch = packed(rows)
        batch.pop("num_tokens")
        return batch

    data = batches(s["shape"]["vocab_size"], s["seq"], s["steps"])
    trainer = trainer_cls(model=model, args=_args(model_dir / f"out-{which}", cfg, dry, s["steps"], which == "ours"),
                          train_dataset=data, data_collator=collate, callbacks=[timer.callback])
    if which == "ours":
        trainer.loss_impl = loss_impl
    trainer.train()
    timed = timer.times[WARMUP:]
    result = {"which": which, "loss_impl": loss_impl, "load_s": round(load_s, 1),
              "step_s": [round(t, 3) for t in timer.times], "tokens_per_s": s["seq"] * len(timed) / sum(timed),
              "max_memory_allocated": torch.cuda.max_memory_allocated() if cuda else None,
              "nvidia_smi_bytes": _nvidia_smi_bytes() if cuda else None,
              "device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"}
    (model_dir / f"result-{which}.json").write_text(json.dumps(result, indent=1))
    return result


def _nvidia_smi_bytes() -> int | None:
    """This process' GPU memory as nvidia-smi reports it (includes the CUDA context and the allocator's cache)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        pid, _, mib = line.partition(",")
        if pid.strip() == str(os.getpid()):
            return int(float(mib)) * 2 ** 20
    return None


def report(model_dir: Path) -> dict:
    from tunesmith.core.memory import estimate_from_spec
    from tunesmith.core.model import arch_spec
    from tunesmith.core.model import param_inventory

    dry = json.loads((model_dir / "gpu_check.json").read_text())["dry"]
    config = json.loads((model_dir / "config.json").read_text())
    est = estimate_from_spec(run_config(model_dir, dry), arch_spec(config), param_inventory(config))
    ours = json.loads((model_dir / "result-ours.json").read_text())
    base = json.loads((model_dir / "result-baseline.json").read_text())
    GiB = 2 ** 30
    out = {"device": ours["device"], "estimate_total_gb": est.total_gb, "estimate_allocated_gb": est.allocated / GiB,
           "ours": ours, "baseline": base, "tokens_per_s_ratio": ours["tokens_per_s"] / base["tokens_per_s"]}
    print(f"device: {ours['device']}")
    print(f"estimate: {est.total_gb:.2f} GB total, {est.allocated / GiB:.2f} GB allocated (without CUDA context "
          "and fragmentation)")
    for r in (ours, base):
        alloc = r["max_memory_allocated"]
        smi = r["nvidia_smi_bytes"]
        line = f"  {r['which']:<9} loss {r['loss_impl']:<8} {r['tokens_per_s']:9.1f} tokens/s"
        if alloc is not None:
            line += f"  max_memory_allocated {alloc / GiB:.2f} GB"
            if r is ours:
                line += f" (estimate/measured {est.allocated / alloc:.3f})"
        if smi is not None:
            line += f"  nvidia-smi {smi / GiB:.2f} GB" + (f" (estimate/measured {est.total / smi:.3f})"
                                                         if r is ours else "")
        print(line)
    print(f"tokens/s ours / baseline: {out['tokens_per_s_ratio']:.3f}")
    (model_dir / "report.json").write_text(json.dumps(out, indent=1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("make", "run", "report"))
    ap.add_argument("dir", type=Path)
    ap.add_argument("which", nargs="?", choices=("ours", "baseline"))
    ap.add_argument("--dry-run", action="store_true", help="tiny model on the CPU (for the tests)")
    args = ap.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.step == "make":
        make(args.dir, args.dry_run)
    elif args.step == "run":
        if not args.which:
            ap.error("run needs 'ours' or 'baseline'")
        print(json.dumps(run(args.dir, args.which)))
    else:
        report(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
