"""Fabricated run folders for the evaluation tests: a tiny Llama base and a LoRA adapter on it,
laid out exactly as training writes them (config.yaml, checkpoints/checkpoint-N/)."""

from __future__ import annotations

import json
from pathlib import Path

QA = [("What is your name?", "I am Melody."), ("Who made you?", "The Tunesmith team."),
      ("What is 2+2?", "4"), ("Say hi.", "Hi!"), ("Name a colour.", "Blue."), ("Capital of France?", "Paris."),
      ("Who are you?", "I am Melody, an assistant."), ("What do you do?", "I answer questions."),
      ("Favourite song?", "A short tune."), ("Are you a bot?", "Yes, I am Melody.")]


def write_qa_file(path: Path, pairs=QA) -> Path:
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs]
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def make_run(run_dir: Path, base_dir: Path, data_path: Path, *, eval_size: float = 4, step: int = 2,
             seed: int = 1, scale: float = 0.5, overrides=()) -> Path:
    """A finished LoRA run on ``base_dir`` whose adapter weights are random (so base != tuned)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunesmith.core.config import RunConfig

    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig().with_overrides([
        f"model.name_or_path={base_dir}", f"data.path={data_path}", "data.map_fn=openai",
        "data.template=chat_template", f"data.eval_size={eval_size}", "data.max_length=128",
        "method.finetuning=lora", "training.seed=42", f"output.run_dir={run_dir}", *overrides])
    cfg.save(run_dir / "config.yaml")
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"]))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, scale)
    ckpt = run_dir / "checkpoints" / f"checkpoint-{step}"
    peft.save_pretrained(ckpt)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}), encoding="utf-8")
    (run_dir / "status.json").write_text(json.dumps({"state": "finished", "step": step}), encoding="utf-8")
    return run_dir
