"""Model facts from config.json alone: no weights are read or downloaded.

``model_facts("Qwen/Qwen2-7B-Instruct")`` finds the model's config.json (a local folder, the
embedded model's imported folder, or the local Hugging Face cache for a hub id; for the models of
the presets, fields bundled in presets/model_configs.json when the cache has none), reads the
architecture numbers from it, and counts parameters by building the model on PyTorch's meta device
(shapes only, no memory). Architectures that need the model's own Python code (InternLM2, ChatGLM3,
Baichuan2, Qwen-1, MiniCPM-1, DeepSeek-MoE) are never executed here: their parameters are counted
from the config fields instead, and the facts say so.

The architecture numbers are :mod:`tunesmith.core.model.architecture`'s :class:`ArchSpec` (which also feeds the memory
estimate in :mod:`tunesmith.core.memory`), the parameter counts :mod:`tunesmith.core.model.inventory`'s.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from tunesmith.core.errors import UserError, missing_model_error
from tunesmith.core.model.architecture import arch_spec, human_count
from tunesmith.core.model.inventory import param_inventory
from tunesmith.core.refs import is_embedded, looks_like_hub_id

# config.json model_type -> the family name shown to users
FAMILIES = {
    "llama": "llama", "mistral": "mistral", "mixtral": "mixtral", "qwen": "qwen", "qwen2": "qwen2",
    "qwen2_moe": "qwen2", "qwen3": "qwen3", "internlm2": "internlm2", "internlm3": "internlm3",
    "chatglm": "chatglm", "baichuan": "baichuan", "gemma": "gemma", "gemma2": "gemma", "gemma3_text": "gemma",
    "phi3": "phi3", "phi": "phi", "deepseek": "deepseek", "deepseek_v2": "deepseek", "deepseek_v3": "deepseek",
    "gpt_bigcode": "starcoder", "starcoder2": "starcoder", "minicpm": "minicpm", "minicpm3": "minicpm",
    "smollm3": "smollm", "gpt2": "gpt2",
}
# Name fragments that identify a family better than model_type (Yi, Zephyr, SmolLM are all "llama"/"mistral").
NAME_FAMILIES = (("smollm2", "smollm2"), ("smollm", "smollm"), ("zephyr", "zephyr"), ("yi-", "yi"),
                 ("internlm2_5", "internlm2.5"), ("internlm2.5", "internlm2.5"), ("llama-3", "llama3"),
                 ("llama3", "llama3"), ("llama-2", "llama2"), ("llama2", "llama2"), ("qwen1.5", "qwen1.5"),
                 ("deepseek-coder", "deepseek"), ("starcoder", "starcoder"), ("tinyllama", "llama"))


# ---- finding config.json -------------------------------------------------------------------------

BUNDLED_CONFIGS = Path(__file__).resolve().parents[2] / "presets" / "model_configs.json"


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
        from tunesmith.core.refs import resolve_model_path

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
                            "`python -m tunesmith import-gguf`.")
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
    from tunesmith.core.data.templates import template_for_model

    try:
        return template_for_model(name_or_path)
    except Exception:  # a template guess must never break the facts
        return ""


def model_facts(name_or_path: str) -> dict:
    """Facts about a model from its config.json, without loading weights.

    Keys: name, config_path, source, architecture, model_type, family, params, params_human,
    param_source ('meta device' or 'config fields'), layers, hidden, heads, kv_heads, head_dim,
    intermediate, vocab, context, dtype, tied_embeddings, experts, experts_per_token,
    needs_remote_code, template.
    """
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
