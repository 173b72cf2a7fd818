"""Helpers shared by the callbacks: the language, user-path checks, a tokenizer cache."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from tunesmith.app.security import resolve_user_path
from tunesmith.app.settings import AppSettings
from tunesmith.core.config import DEEPSPEED_PRESETS, RunConfig
from tunesmith.core.errors import UserError
from tunesmith.core.refs import is_embedded, is_hub_ref

LANG_ID = "top/lang"


def lang_of(values: dict) -> str:
    return values.get(LANG_ID) or "en"


def check_source(text: str, settings: AppSettings, what: str, *, allow_hub: bool = True,
                 allow_embedded: bool = False) -> str:
    """A model/dataset reference typed in the browser, checked: an embedded name, a hub id, or a
    path inside the allowed folders (resolved, so ``..`` and symlinks cannot escape)."""
    text = (text or "").strip()
    if allow_embedded and is_embedded(text):
        return text
    if allow_hub and is_hub_ref(text):
        return text
    return str(resolve_user_path(text, settings.allowed_roots(), what=what))


# What training.resume_from may say without naming a folder: resolved inside the run's own checkpoints/.
RESUME_NAME_RE = re.compile(r"^(latest|auto|true|True|(checkpoint-)?\d+)$")


def app_folders(settings: AppSettings) -> set[Path]:
    """The app's own folders: never a run, even when the runs root is the folder that holds them."""
    return {Path(p).expanduser().resolve() for p in (settings.home, settings.uploads_dir, settings.exports_dir,
                                                     settings.home / "configs", settings.home / "models")}


def check_run_folder(text: str, settings: AppSettings, *, must_exist: bool = True, what: str = "run folder",
                     field: str | None = None) -> Path:
    """A run folder named by the browser (a hidden box, the runs list, the Run folder field), checked
    against the runs list: a folder directly inside the runs root, not one of the app's own folders,
    not reached through a symlink. Every call that names a run goes through here, so a folder that
    merely holds a status.json (an upload, a typed path) is never treated as a run."""
    path = resolve_user_path(text, settings.allowed_roots(), must_exist=False, what=what)
    root = Path(settings.runs_root).expanduser().resolve()
    if path.parent != root or path in app_folders(settings):
        raise UserError(f"{text} is not a run of this app (runs are the folders directly inside {root}).",
                        "Pick a run from the list of runs, or leave Run folder empty to make a new one there.",
                        field=field)
    if must_exist:
        from tunesmith.core.train.rundir import RunDir

        if not path.is_dir() or not RunDir(path).exists():
            raise UserError(f"{text} is not a run folder (no status.json or config.yaml).",
                            "Pick a run from the list of runs.", field=field)
    return path


def check_config(cfg: RunConfig, settings: AppSettings, *, run_dir: str | Path | None = None) -> RunConfig:
    """THE check of a config against the app's allowed folders; every GUI road to a launch takes it
    (Start, Resume, Load config, a queued run when it starts), whatever wrote the config: the form, a
    YAML file, a run's own config.yaml. Paths come back resolved. Raises UserError naming the field.

    Checked: the model and the dataset (a path inside the allowed folders, or a hub id / embedded
    name), the run folder (one of the runs list), a DeepSpeed JSON and a resume checkpoint given as a
    path (a name like ``latest`` or ``checkpoint-3`` is looked up inside the run folder only)."""
    if cfg.model.name_or_path:
        cfg.model.name_or_path = check_source(cfg.model.name_or_path, settings, "model", allow_embedded=True)
    if cfg.data.path:
        cfg.data.path = check_source(cfg.data.path, settings, "dataset")
    roots = settings.allowed_roots()
    if run_dir is not None:
        cfg.output.run_dir = str(run_dir)
    if cfg.output.run_dir:
        cfg.output.run_dir = str(check_run_folder(cfg.output.run_dir, settings, must_exist=False,
                                                  field="output.run_dir"))
    resume = (cfg.training.resume_from or "").strip()
    if resume and not RESUME_NAME_RE.match(resume):
        cfg.training.resume_from = str(resolve_user_path(resume, roots, what="checkpoint"))
    ds = (cfg.distributed.deepspeed or "").strip()
    if ds and ds not in DEEPSPEED_PRESETS:
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


# What the first Load, estimate or preview needs besides transformers itself: together about 10 s of
# imports on a quiet 2-core machine and minutes on a busy one, paid by whoever clicks first.
WARM_MODULES = ("transformers.models.auto.tokenization_auto", "transformers.modeling_utils",
                "transformers.models.llama.modeling_llama", "peft")


def warm_up_in_background(delay_s: float = 1.0, *, embedded: bool = True) -> threading.Thread:
    """Import the heavy libraries in a daemon thread once the first page is served, then (``embedded``)
    import the bundled model if this home has not yet.

    Start-up stays quick (the page does not wait for torch; starting the warm-up 8 s later instead of 1 s
    did not make the first page quicker, measured with bench/studio_latency.py), and a person who reads
    the Data tab for a
    few seconds finds the first Load/preview/estimate as quick as the later ones. Each step holds the
    import lock, so a callback that needs transformers meanwhile waits for the step instead of racing it.
    The bundled model is what the studio starts with: its first estimate, preview or Start would otherwise
    spend about 25 s turning the GGUF into safetensors (the import holds its own file lock).
    """
    import importlib

    def warm():
        time.sleep(delay_s)
        import_transformers_once()
        for name in WARM_MODULES:
            with _TRANSFORMERS_LOCK:
                try:
                    importlib.import_module(name)
                except ImportError:  # an optional part (peft) missing only slows its first use
                    pass
        if embedded:
            from tunesmith.core import paths
            from tunesmith.core.gguf_import import ensure_embedded_model

            if paths.embedded_gguf_path() is not None:
                try:
                    ensure_embedded_model()
                except Exception:  # noqa: BLE001 - the first real use reports it with its fix
                    pass

    thread = threading.Thread(target=warm, name="tunesmith-warm-up", daemon=True)
    thread.start()
    return thread


def tokenizer_for(model_name_or_path: str, trust_remote_code: bool = False):
    """The model's tokenizer, loaded once per path (transformers is imported here, not at start-up)."""
    import_transformers_once()
    from tunesmith.core.refs import resolve_tokenizer_path

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
