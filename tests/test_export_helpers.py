"""Builders for fake-but-real training outputs used by the export and chat tests (no tests here).

They write the run-directory layout the trainer writes (RUN/config.yaml, metrics.jsonl,
checkpoints/checkpoint-N/ with config.yaml and trainer_state.json) around a PEFT adapter or full
model whose weights were perturbed, so an adapter that is silently dropped changes the logits.
"""

from __future__ import annotations

import json
from pathlib import Path


def run_config(base_dir: Path, finetuning: str = "lora", template: str = "internlm2_chat"):
    from tunesmith.core.config import RunConfig

    cfg = RunConfig()
    cfg.model.name_or_path = str(base_dir)
    cfg.method.finetuning = finetuning
    cfg.data.path = "assets/demo.jsonl"
    cfg.data.template = template
    cfg.lora.r, cfg.lora.alpha = 8, 16
    return cfg


def lora_model(base_dir: Path, *, seed: int = 1, scale: float = 0.05, r: int = 8):
    """A PeftModel (LoRA on all linear layers) whose lora_B is random, so the adapter matters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


def write_run(run_dir: Path, cfg, *, losses=(2.0, 1.5, 1.25)) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    lines = [json.dumps({"step": i + 1, "total_steps": len(losses), "loss": loss}) for i, loss in enumerate(losses)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return run_dir


def save_checkpoint(model, run_dir: Path, step: int, cfg) -> Path:
    """Save like the trainer: checkpoints/checkpoint-N/ + config.yaml + trainer_state.json."""
    ckpt = run_dir / "checkpoints" / f"checkpoint-{step}"
    model.save_pretrained(str(ckpt))
    cfg.save(ckpt / "config.yaml")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}), encoding="utf-8")
    return ckpt


def make_lora_run(run_dir: Path, base_dir: Path, *, steps=(5, 10), template: str = "internlm2_chat"):
    """A LoRA run with one checkpoint per step (different weights each); returns (run_dir, {step: model})."""
    cfg = run_config(base_dir, "lora", template)
    write_run(run_dir, cfg)
    models = {}
    for i, step in enumerate(steps):
        models[step] = lora_model(base_dir, seed=100 + i)
        save_checkpoint(models[step], run_dir, step, cfg)
    return run_dir, models


def make_full_run(run_dir: Path, base_dir: Path, *, step: int = 3, seed: int = 7):
    """A full fine-tune run: the base with every weight nudged; returns (run_dir, model)."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = run_config(base_dir, "full")
    write_run(run_dir, cfg)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    save_checkpoint(model, run_dir, step, cfg)
    return run_dir, model.eval()


def logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def sample_ids(tokenizer):
    return tokenizer("The quick brown fox jumps over the lazy dog.", add_special_tokens=False)["input_ids"]


def tree_snapshot(folder: Path) -> dict:
    """path -> (size, mtime_ns) for every file, to prove a failed action touched nothing."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}
