"""Helpers shared by the callbacks: the language, user-path checks, a tokenizer cache."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from app.form import config_from_values
from app.security import resolve_user_path
from app.settings import AppSettings
from core.config import RunConfig
from core.errors import UserError

LANG_ID = "top/lang"


def lang_of(values: dict) -> str:
    return values.get(LANG_ID) or "en"


def looks_like_hub_id(text: str) -> bool:
    """``org/name`` that is not a local path.

    >>> looks_like_hub_id("tatsu-lab/alpaca"), looks_like_hub_id("./data/x.json"), looks_like_hub_id("/abs/x")
    (True, False, False)
    """
    parts = text.split("/")
    return (len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~")) and "\\" not in text
            and not Path(text).expanduser().exists())


def check_source(text: str, settings: AppSettings, what: str, *, allow_hub: bool = True,
                 allow_embedded: bool = False) -> str:
    """A model/dataset reference typed in the browser, checked: an embedded name, a hub id, or a
    path inside the allowed folders (resolved, so ``..`` and symlinks cannot escape)."""
    text = (text or "").strip()
    if allow_embedded and text.startswith("embedded:"):
        return text
    if allow_hub and looks_like_hub_id(text):
        return text
    return str(resolve_user_path(text, settings.allowed_roots(), what=what))


def checked_config(values: dict, settings: AppSettings, *, base: RunConfig | None = None) -> RunConfig:
    """The form as a RunConfig whose model and data paths are inside the allowed folders."""
    cfg = config_from_values(values, base)
    if cfg.model.name_or_path:
        cfg.model.name_or_path = check_source(cfg.model.name_or_path, settings, "model", allow_embedded=True)
    if cfg.data.path:
        cfg.data.path = check_source(cfg.data.path, settings, "dataset")
    roots = settings.allowed_roots()
    if cfg.output.run_dir:
        cfg.output.run_dir = str(resolve_user_path(cfg.output.run_dir, roots, must_exist=False, what="run folder"))
    resume = cfg.training.resume_from
    if resume and resume not in ("latest", "auto") and ("/" in resume or resume.startswith(("~", "."))):
        cfg.training.resume_from = str(resolve_user_path(resume, roots, what="checkpoint"))
    ds = cfg.distributed.deepspeed
    if ds and (ds.endswith(".json") or "/" in ds):
        cfg.distributed.deepspeed = str(resolve_user_path(ds, roots, what="DeepSpeed config"))
    return cfg


def problems_html(problems: list, heading: str) -> str:
    """Every problem of a config, one per line, each naming its field."""
    from html import escape

    items = "".join(f"<li>{escape(str(p))}</li>" for p in problems)
    return f'<div class="ts-error"><b>{escape(heading)}</b><ul>{items}</ul></div>'


_TOKENIZERS: dict[str, Any] = {}
_TOKENIZER_LOCK = threading.Lock()
_TRANSFORMERS_LOCK = threading.Lock()


def import_transformers_once() -> None:
    """Import transformers (and torch) in one thread while the others wait.

    Its first import is not thread-safe: two callbacks importing it at the same moment (two people
    pressing Load in Chat, or a preview while the memory estimate runs) make one of them fail with
    "cannot import name 'AutoTokenizer' from 'transformers'". Once imported, using it from many
    threads is fine. Call this first in every callback that may be the first to need it.
    """
    import sys

    if "transformers" in sys.modules and not _TRANSFORMERS_LOCK.locked():
        return
    with _TRANSFORMERS_LOCK:
        import transformers  # noqa: F401


def tokenizer_for(model_name_or_path: str, trust_remote_code: bool = False):
    """The model's tokenizer, loaded once per path (transformers is imported here, not at start-up)."""
    import_transformers_once()
    from core.gguf_import import resolve_tokenizer_path

    path = resolve_tokenizer_path(model_name_or_path)
    key = f"{path}|{trust_remote_code}"
    with _TOKENIZER_LOCK:
        if key not in _TOKENIZERS:
            from transformers import AutoTokenizer

            try:
                _TOKENIZERS[key] = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            except OSError as exc:
                raise UserError(f"cannot load the tokenizer of {model_name_or_path}: {str(exc).splitlines()[0]}",
                                "Check the model path on the Model tab (a folder with tokenizer files, or a hub id "
                                "that is downloaded already).", field="model.name_or_path") from None
        return _TOKENIZERS[key]
