"""References to models and datasets: what a string names, and where it lives on disk.

The one place for the rule. A reference is

* ``embedded``: ``embedded:SmolLM2-135M-Instruct``, the bundled model (imported from its GGUF once);
* ``folder`` / ``file``: an existing local path (``~`` expanded, relative to the current folder);
* ``hub``: ``owner/name`` that is not a local path and does not end in a file extension we read;
* ``missing``: anything else, e.g. ``data/train.json`` that does not exist. A path-looking string is
  never taken for a hub id, so a typo is reported before a run starts, not inside the trainer.

No heavy imports; resolving ``embedded:`` imports the model on first use (tunesmith.core.gguf_import).
"""

from __future__ import annotations

import re
from pathlib import Path

from tunesmith.core.errors import UserError

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODEL = "embedded:SmolLM2-135M-Instruct"
EMBEDDED = "embedded"
FOLDER = "folder"
FILE = "file"
HUB = "hub"
MISSING = "missing"
EMPTY = "empty"

# Endings that make a string a file name, never a hub repository (data files, weights, configs).
FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".parquet", ".txt", ".gguf", ".safetensors", ".bin",
                 ".pt", ".pth", ".yaml", ".yml", ".py", ".zip", ".gz", ".tar", ".arrow")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_embedded(text: str) -> bool:
    """``is_embedded("embedded:SmolLM2-135M-Instruct")`` -> True."""
    return str(text or "").startswith(EMBEDDED_PREFIX)


def looks_like_hub_id(text: str) -> bool:
    """``owner/name`` by its shape alone (the disk is not asked).

    >>> looks_like_hub_id("tatsu-lab/alpaca"), looks_like_hub_id("Qwen/Qwen2.5-0.5B-Instruct")
    (True, True)
    >>> looks_like_hub_id("data/train.json"), looks_like_hub_id("./data/x"), looks_like_hub_id("/abs/x")
    (False, False, False)
    >>> looks_like_hub_id("x.json"), looks_like_hub_id("a/b/c"), looks_like_hub_id("a\\\\b")
    (False, False, False)
    """
    text = str(text or "")
    return bool(_HUB_ID.match(text)) and not text.lower().endswith(FILE_SUFFIXES)


def classify(text: str) -> str:
    """'embedded' | 'folder' | 'file' | 'hub' | 'missing' | 'empty' for a model or dataset reference.

    >>> classify("embedded:SmolLM2-135M-Instruct"), classify("tatsu-lab/alpaca"), classify("")
    ('embedded', 'hub', 'empty')
    >>> classify("data/no-such-train.json"), classify("no/such/folder"), classify(".")
    ('missing', 'missing', 'folder')
    """
    text = str(text or "")
    if not text.strip():
        return EMPTY
    if is_embedded(text):
        return EMBEDDED
    path = Path(text).expanduser()
    if path.is_dir():
        return FOLDER
    if path.exists():
        return FILE
    return HUB if looks_like_hub_id(text) else MISSING


def is_hub_ref(text: str) -> bool:
    """A hub id that is not also a local path (what would be fetched from the hub)."""
    return classify(text) == HUB


def resolve_model_path(name_or_path: str) -> str:
    """Map ``embedded:...`` to the imported folder; expand ``~``; leave hub ids alone."""
    if is_embedded(name_or_path):
        if name_or_path != EMBEDDED_MODEL:
            raise UserError(f"unknown embedded model '{name_or_path}'.", f"The bundled model is {EMBEDDED_MODEL}.")
        from tunesmith.core.gguf_import import ensure_embedded_model

        return str(ensure_embedded_model())
    expanded = Path(name_or_path).expanduser()
    return str(expanded) if expanded.exists() else name_or_path


def resolve_tokenizer_path(name_or_path: str) -> str:
    """Like :func:`resolve_model_path` but only needs the tokenizer (fast for previews)."""
    if is_embedded(name_or_path):
        from tunesmith.core.gguf_import import ensure_embedded_tokenizer

        return str(ensure_embedded_tokenizer())
    return resolve_model_path(name_or_path)
