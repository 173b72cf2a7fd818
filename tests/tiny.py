"""Tiny random-weight models for fast tests, built from a config and saved to a folder.

They reuse the real SmolLM2 tokenizer (imported once from the embedded GGUF), so token ids in tests
are the ids a user would see.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def copy_tokenizer(tokenizer_dir: str | Path, out_dir: str | Path) -> None:
    for name in TOKENIZER_FILES:
        src = Path(tokenizer_dir) / name
        if src.exists():
            shutil.copy(src, Path(out_dir) / name)


def make_tiny_llama(out_dir: str | Path, tokenizer_dir: str | Path, *, seed: int = 0, layers: int = 2,
                    hidden: int = 64, tie: bool = False) -> Path:
    """A 2-layer, width-64 Llama with the SmolLM2 vocabulary (~6.4 M params, mostly embeddings)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    copy_tokenizer(tokenizer_dir, out_dir)
    return out_dir


def make_lora_run(home: Path, base_dir: str | Path, *overrides: str) -> Path:
    """HOME/runs/lora-run, a finished LoRA run of ``base_dir`` with checkpoints/checkpoint-2 holding a random
    (non-zero) adapter, made by hand without training; ``overrides`` are extra ``--set`` values."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunesmith.core.config import RunConfig

    run_dir = Path(home) / "runs" / "lora-run"
    ckpt = run_dir / "checkpoints" / "checkpoint-2"
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base_dir)),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(str(ckpt))
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    cfg = RunConfig().with_overrides([f"model.name_or_path={base_dir}", "method.finetuning=lora",
                                      f"output.run_dir={run_dir}", *overrides])
    cfg.save(run_dir / "config.yaml")
    (run_dir / "status.json").write_text(json.dumps({"state": "finished", "step": 2, "total_steps": 2}))
    (run_dir / "metrics.jsonl").write_text("")
    return run_dir
