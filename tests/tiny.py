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
