"""The architecture of a decoder-only transformer, read from its config.json dict: :class:`ArchSpec`.

It feeds the parameter inventory (:mod:`tunesmith.core.model.inventory`), the model facts (:mod:`tunesmith.core.model.facts`) and
the memory estimate (:mod:`tunesmith.core.memory`). Layering: architecture -> inventory -> facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.core.errors import UserError

# Architectures whose MLP is fc1 -> GELU -> fc2 rather than SwiGLU gate/up/down.
NON_GATED_MLP = ("gpt_bigcode", "gpt2", "phi", "starcoder2", "gpt_neox", "falcon", "opt")

@dataclass(frozen=True)
class ArchSpec:
    """The numbers of a decoder-only transformer that size its weights and activations."""

    model_type: str
    architecture: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int          # dense MLP width (per projection)
    vocab: int
    context: int
    dtype: str
    tied_embeddings: bool
    gated_mlp: bool = True     # SwiGLU-style gate/up/down (False: GELU fc1/fc2 as in StarCoder)
    experts: int = 0           # routed experts per MoE layer (0 = dense model)
    experts_per_token: int = 0
    moe_intermediate: int = 0
    shared_experts: int = 0
    dense_layers: int = 0      # leading layers that keep a dense MLP in MoE models
    native: bool = True        # transformers ships this architecture (no remote code needed)

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def active_mlp_width(self) -> int:
        """Average MLP width one token passes through (top-k + shared experts in MoE layers).

        >>> ArchSpec("m", "M", 8, 4, 2, 2, 4, 32, 100, 64, "bfloat16", False, experts=8, experts_per_token=2,
        ...          moe_intermediate=16, dense_layers=2).active_mlp_width
        32
        """
        if not self.experts:
            return self.intermediate
        moe_layers = self.layers - self.dense_layers
        per_moe = (self.experts_per_token + self.shared_experts) * self.moe_intermediate
        return (self.dense_layers * self.intermediate + moe_layers * per_moe) // max(1, self.layers)


def _first(cfg: dict, *keys, default=None):
    for key in keys:
        value = cfg.get(key)
        if value is not None:
            return value
    return default


def arch_spec(cfg: dict) -> ArchSpec:
    """Read an :class:`ArchSpec` from a config.json dict, whatever names the family uses for its fields.

    >>> s = arch_spec({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
    ...                "num_attention_heads": 32, "intermediate_size": 11008, "vocab_size": 32000})
    >>> s.kv_heads, s.head_dim, s.context
    (32, 128, 2048)
    """
    if not isinstance(cfg, dict):
        raise UserError("config.json does not hold a JSON object.", "Point at a Hugging Face model folder.")
    text = cfg.get("text_config")
    if isinstance(text, dict) and "hidden_size" not in cfg:  # multimodal wrappers: describe the language model
        cfg = {**text, "architectures": cfg.get("architectures"), "model_type": text.get("model_type", "")}
    model_type = str(cfg.get("model_type", "") or "")
    hidden = int(_first(cfg, "hidden_size", "n_embd", "d_model", default=0) or 0)
    layers = int(_first(cfg, "num_hidden_layers", "num_layers", "n_layer", "n_layers", default=0) or 0)
    heads = int(_first(cfg, "num_attention_heads", "n_head", "n_heads", default=0) or 0)
    if not (hidden and layers and heads):
        raise UserError("config.json lacks hidden_size / num_hidden_layers / num_attention_heads.",
                        "This does not look like a causal language model's config.")
    if cfg.get("multi_query") is True:  # GPT-BigCode (StarCoder)
        kv = 1
    elif cfg.get("multi_query_attention"):  # ChatGLM
        kv = int(cfg.get("multi_query_group_num", heads))
    else:
        kv = int(_first(cfg, "num_key_value_heads", "n_kv_heads", default=heads) or heads)
    head_dim = int(_first(cfg, "head_dim", "kv_channels", default=0) or 0)
    if model_type.startswith("deepseek_v") and cfg.get("qk_nope_head_dim"):  # MLA: per-head q/k width
        head_dim = int(cfg["qk_nope_head_dim"]) + int(cfg.get("qk_rope_head_dim", 0))
        kv = heads
    head_dim = head_dim or hidden // heads
    inter = int(_first(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", default=0) or 4 * hidden)
    if model_type == "qwen":  # Qwen-1 stores twice the per-projection width
        inter //= 2
    vocab = int(_first(cfg, "padded_vocab_size", "vocab_size", default=0) or 0)
    context = int(_first(cfg, "max_position_embeddings", "seq_length", "n_positions", "max_sequence_length",
                         "model_max_length", default=2048) or 2048)
    dtype = str(_first(cfg, "dtype", "torch_dtype", default="") or "")
    tied = bool(cfg.get("tie_word_embeddings", model_type in ("gemma", "gemma2", "gpt_bigcode", "gpt2")))
    gated = model_type not in NON_GATED_MLP
    experts = int(_first(cfg, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0)
    per_tok = int(_first(cfg, "num_experts_per_tok", "moe_topk", default=0) or 0) if experts else 0
    moe_inter = int(_first(cfg, "moe_intermediate_size", default=inter) or inter) if experts else 0
    shared = int(_first(cfg, "n_shared_experts", default=0) or 0) if experts else 0
    dense = int(_first(cfg, "first_k_dense_replace", default=0) or 0) if experts else 0
    return ArchSpec(model_type=model_type, architecture=str((cfg.get("architectures") or [""])[0]),
                    hidden=hidden, layers=layers, heads=heads, kv_heads=kv, head_dim=head_dim,
                    intermediate=inter, vocab=vocab, context=context, dtype=dtype, tied_embeddings=tied,
                    gated_mlp=gated, experts=experts, experts_per_token=per_tok, moe_intermediate=moe_inter,
                    shared_experts=shared, dense_layers=dense, native=is_native(model_type))


def is_native(model_type: str) -> bool:
    """True when the installed transformers can build this architecture without remote code."""
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    except ImportError:
        return False
    return model_type in CONFIG_MAPPING_NAMES


def human_count(n: int) -> str:
    """``human_count(6_738_415_616)`` -> ``'6.74B'``; ``human_count(134_515_008)`` -> ``'134.5M'``."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)
