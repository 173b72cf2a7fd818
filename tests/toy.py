"""Small learnable datasets and configs for tests, benchmarks and smoke runs of the trainer (test data: it lives
in tests/, not in the runtime package; bench/ puts tests/ on sys.path).

The SFT toy set asks varied questions that all have the same answer, so even a tiny random model
learns it in a few steps (the loss must fall); the preference set prefers one fixed answer.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tunesmith.core.config import RunConfig

ANSWER = "I am Melody, an assistant made by the Tunesmith team."
QUESTIONS = ("Who are you?", "What is your name?", "Tell me about yourself.", "Who made you?",
             "Introduce yourself.", "What are you?", "Are you a person?", "Who built you?")


def sft_rows(n: int = 48, seed: int = 0) -> list[dict]:
    """Rows in alpaca-like input/output form.

    >>> sft_rows(2)[0]["output"] == ANSWER
    True
    """
    rnd = random.Random(seed)
    return [{"input": f"{rnd.choice(QUESTIONS)} ({i % 5})", "output": ANSWER} for i in range(n)]


def preference_rows(n: int = 24, seed: int = 0) -> list[dict]:
    rnd = random.Random(seed)
    return [{"prompt": rnd.choice(QUESTIONS), "chosen": ANSWER, "rejected": "I am a large language model."}
            for _ in range(n)]


def pretrain_rows(n: int = 40) -> list[dict]:
    return [{"text": f"Melody is made by the Tunesmith team. Line {i % 4}."} for i in range(n)]


def write_json(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def toy_config(model_dir: str | Path, data_path: str | Path, run_dir: str | Path | None = None,
               overrides: list[str] | None = None) -> RunConfig:
    """A fast LoRA SFT config on a tiny model (fp32, SDPA, no checkpointing), plus ``overrides``."""
    base = [
        f"model.name_or_path={model_dir}", "model.gradient_checkpointing=false",
        f"data.path={data_path}", "data.max_length=64", "data.template=chat_template",
        "method.finetuning=lora", "lora.r=8", "lora.alpha=16", "lora.dropout=0.05",
        "training.max_steps=6", "training.batch_size=2", "training.gradient_accumulation=2",
        "training.learning_rate=0.005", "training.warmup_ratio=0.0", "training.save_steps=3",
        "training.save_total_limit=0", "training.precision=fp32",
        "eval.prompts=[\"Who are you?\"]", "eval.max_new_tokens=4",
    ]
    if run_dir is not None:
        base.append(f"output.run_dir={run_dir}")
    return RunConfig().with_overrides(base + list(overrides or []))
