"""Model facts from config.json alone: no weights are read or downloaded.

``model_facts("Qwen/Qwen2-7B-Instruct")`` finds the model's config.json (a local folder, the
embedded model's imported folder, or the local Hugging Face cache for a hub id; for the models of
the presets, fields bundled in presets/model_configs.json when the cache has none), reads the
architecture numbers from it, and counts parameters by building the model on PyTorch's meta device
(shapes only, no memory). Architectures that need the model's own Python code (InternLM2, ChatGLM3,
Baichuan2, Qwen-1, MiniCPM-1, DeepSeek-MoE) are never executed here: their parameters are counted
from the config fields instead, and the facts say so.

The same :class:`ArchSpec` feeds the memory estimate in :mod:`core.memory`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import UserError, missing_model_error
from core.refs import is_embedded, looks_like_hub_id

# config.json model_type -> the family name shown to users
FAMILIES = {
    "llama": "llama", "mistral": "mistral", "mixtral": "mixtral", "qwen": "qwen", "qwen2": "qwen2",
    "qwen2_moe": "qwen2", "qwen3": "qwen3", "internlm2": "internlm2", "internlm3": "internlm3",
    "chatglm": "chatglm", "baichuan": "baichuan", "gemma": "gemma", "gemma2": "gemma", "gemma3_text": "gemma",
    "phi3": "phi3", "phi": "phi", "deepseek": "deepseek", "deepseek_v2": "deepseek", "deepseek_v3": "deepseek",
    "gpt_bigcode": "starcoder", "starcoder2": "starcoder", "minicpm": "minicpm", "minicpm3": "minicpm",
    "smollm3": "smollm", "gpt2": "gpt2",
}
# Architectures whose MLP is fc1 -> GELU -> fc2 rather than SwiGLU gate/up/down.
NON_GATED_MLP = ("gpt_bigcode", "gpt2", "phi", "starcoder2", "gpt_neox", "falcon", "opt")
# Name fragments that identify a family better than model_type (Yi, Zephyr, SmolLM are all "llama"/"mistral").
NAME_FAMILIES = (("smollm2", "smollm2"), ("smollm", "smollm"), ("zephyr", "zephyr"), ("yi-", "yi"),
                 ("internlm2_5", "internlm2.5"), ("internlm2.5", "internlm2.5"), ("llama-3", "llama3"),
                 ("llama3", "llama3"), ("llama-2", "llama2"), ("llama2", "llama2"), ("qwen1.5", "qwen1.5"),
                 ("deepseek-coder", "deepseek"), ("starcoder", "starcoder"), ("tinyllama", "llama"))


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


# ---- finding config.json -------------------------------------------------------------------------

BUNDLED_CONFIGS = Path(__file__).resolve().parent.parent / "presets" / "model_configs.json"


class NotCached(UserError):
    """A hub id whose config.json is not in the local cache."""


def find_config_json(name_or_path: str) -> tuple[Path, str]:
    """(path of config.json, where it came from: local / embedded / hub cache).

    Never downloads: a hub id works only when its config.json is already in the local cache
    (:class:`NotCached` otherwise).
    """
    name = str(name_or_path or "").strip()
    if not name:
        raise UserError("no model given.", "Give a local model folder, a hub id, or embedded:SmolLM2-135M-Instruct.")
    if is_embedded(name):
        from core.refs import resolve_model_path

        folder = Path(resolve_model_path(name))
        return folder / "config.json", "embedded"
    local = Path(name).expanduser()
    if local.is_file() and local.name.endswith(".json"):
        return local, "local"
    if local.is_dir():
        path = local / "config.json"
        if not path.is_file():
            raise UserError(f"{local} has no config.json, so it is not a Hugging Face model folder.",
                            "Point at the folder that holds config.json, or import a GGUF file with "
                            "`python -m core import-gguf`.")
        return path, "local"
    if looks_like_hub_id(name):
        cached = _hub_cache_config(name)
        if cached is not None:
            return cached, "hub cache"
        raise NotCached(f"config.json of hub model {name} is not in the local Hugging Face cache, and nothing is "
                        "downloaded to read model facts.",
                        f"Download it once (`huggingface-cli download {name} config.json`) or give a local folder.")
    raise missing_model_error(name)


def _hub_cache_config(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # malformed id or unreadable cache: treat as not cached
        return None
    return Path(found) if isinstance(found, (str, os.PathLike)) and Path(found).is_file() else None


def bundled_config(repo_id: str) -> dict | None:
    """The architecture fields of a preset model's hub config.json, shipped in presets/model_configs.json."""
    try:
        table = json.loads(BUNDLED_CONFIGS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = table.get(repo_id)
    return dict(found) if isinstance(found, dict) else None


def read_config(name_or_path: str) -> tuple[dict, Path, str]:
    """(config.json as a dict, its path, its source) for a model name or path.

    A hub id that is not cached falls back to the bundled fields of the preset models
    (source "bundled snapshot"); any other hub id raises a UserError.
    """
    try:
        path, source = find_config_json(name_or_path)
    except NotCached:
        snapshot = bundled_config(str(name_or_path).strip())
        if snapshot is None:
            raise
        return snapshot, BUNDLED_CONFIGS, "bundled snapshot"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}.", "Check that the file is valid JSON.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object.", "Point at a Hugging Face model folder.")
    return data, path, source


# ---- facts ----------------------------------------------------------------------------------------

def family_of(name_or_path: str, model_type: str) -> str:
    """``family_of("01-ai/Yi-6B", "llama")`` -> ``"yi"``; falls back to the model_type."""
    lowered = name_or_path.lower()
    for fragment, family in NAME_FAMILIES:
        if fragment in lowered:
            return family
    return FAMILIES.get(model_type, model_type or "unknown")


def default_template(name_or_path: str) -> str:
    """The data pipeline's default template for this model ('' when it cannot guess)."""
    from core.data.templates import template_for_model

    try:
        return template_for_model(name_or_path)
    except Exception:  # a template guess must never break the facts
        return ""


def human_count(n: int) -> str:
    """``human_count(6_738_415_616)`` -> ``'6.74B'``; ``human_count(134_515_008)`` -> ``'134.5M'``."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def model_facts(name_or_path: str) -> dict:
    """Facts about a model from its config.json, without loading weights.

    Keys: name, config_path, source, architecture, model_type, family, params, params_human,
    param_source ('meta device' or 'config fields'), layers, hidden, heads, kv_heads, head_dim,
    intermediate, vocab, context, dtype, tied_embeddings, experts, experts_per_token,
    needs_remote_code, template.
    """
    from core.model_params import param_inventory

    config, path, source = read_config(name_or_path)
    spec = arch_spec(config)
    inventory = param_inventory(config)
    facts = {
        "name": str(name_or_path), "config_path": str(path), "source": source,
        "architecture": spec.architecture, "model_type": spec.model_type,
        "family": family_of(str(name_or_path), spec.model_type),
        "params": inventory.total, "params_human": human_count(inventory.total),
        "param_source": inventory.source,
    }
    spec_dict = asdict(spec)
    for key in ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab", "context", "dtype",
                "tied_embeddings", "experts", "experts_per_token"):
        facts[key] = spec_dict[key]
    facts["needs_remote_code"] = not spec.native
    facts["template"] = default_template(str(name_or_path))
    return facts


def format_facts(facts: dict) -> str:
    """A small aligned table of :func:`model_facts` for the CLI and the GUI."""
    rows = [("model", facts["name"]), ("architecture", f"{facts['architecture']} ({facts['model_type']})"),
            ("family", facts["family"]),
            ("parameters", f"{facts['params_human']} ({facts['params']:,}, counted from {facts['param_source']})"),
            ("layers", facts["layers"]), ("hidden size", facts["hidden"]),
            ("attention heads", f"{facts['heads']} (key/value heads {facts['kv_heads']}, head dim {facts['head_dim']})"),
            ("MLP width", facts["intermediate"]), ("vocabulary", f"{facts['vocab']:,}"),
            ("context length", f"{facts['context']:,}"), ("dtype", facts["dtype"] or "(not stated)"),
            ("tied embeddings", "yes" if facts["tied_embeddings"] else "no")]
    if facts.get("experts"):
        rows.append(("experts", f"{facts['experts']} routed, {facts['experts_per_token']} per token"))
    rows.append(("default template", facts["template"] or "(unknown)"))
    if facts["needs_remote_code"]:
        rows.append(("note", "needs the model's own code: set model.trust_remote_code only if you trust it"))
    rows.append(("config", f"{facts['config_path']} ({facts['source']})"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
