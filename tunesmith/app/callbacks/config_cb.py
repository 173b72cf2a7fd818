"""Save / Load config (the same YAML as the CLI), presets, validation and the language switch.

All functions take the form ``values`` (``{id: value}``) and return ``{id: value | Update}``.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.app.callbacks.common import app_folders, check_config, lang_of
from tunesmith.app.form import config_from_values, values_from_config
from tunesmith.app.locales import LOCALES, props, text
from tunesmith.app.registry import Update, ok_html
from tunesmith.app.security import resolve_user_path
from tunesmith.app.settings import AppSettings
from tunesmith.core.config import RunConfig
from tunesmith.core.errors import ConfigError, UserError

CONFIG_PATH_ID = "top/config_path"
STATUS_ID = "top/status"


def default_config_path(settings: AppSettings) -> str:
    return str(settings.home / "configs" / "my_run.yaml")


def _is_run_config(path: Path) -> bool:
    try:
        RunConfig.load(path)
        return True
    except UserError:
        return False


def _run_folder_holding(path: Path, settings: AppSettings) -> Path | None:
    """The runs root, or the run folder (anything with a status.json or checkpoints/), that ``path`` is in."""
    root = Path(settings.runs_root).expanduser().resolve()
    if path == root or root in path.parents:
        # A new folder there would join the runs list; only the app's own folders (when the runs root
        # holds them) are not runs.
        child = root / path.relative_to(root).parts[0] if path != root else root
        if child not in app_folders(settings):
            return child if child != path else root
    for folder in path.parents:
        if (folder / "status.json").exists() or (folder / "checkpoints").is_dir():
            return folder
    return None


def save_config(values: dict, settings: AppSettings) -> dict:
    """Write the form as YAML to the typed path. Only a .yaml/.yml path inside the allowed folders and
    outside the runs root and every run folder; an existing file is replaced only when it is itself a
    run config (never a dataset typed by mistake)."""
    lang = lang_of(values)
    path = resolve_user_path(values.get(CONFIG_PATH_ID) or default_config_path(settings), settings.allowed_roots(),
                             must_exist=False, what="config file")
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise UserError(f"{path.name} does not end in .yaml.", "Save configs as NAME.yaml.", field="config file")
    run = _run_folder_holding(path, settings)
    if run is not None:
        # A run's config.yaml is what Resume and the queue launch; saving the form there would hand
        # them a config nobody checked. Runs get their config from Start, never from Save.
        raise UserError(f"{path} is inside the run folder {run}; Save config never writes into a run.",
                        f"Save it elsewhere, e.g. {default_config_path(settings)}.", field="config file")
    if path.exists() and (path.is_dir() or not _is_run_config(path)):
        raise UserError(f"{path} exists and is not a Tunesmith run config, so it is left untouched.",
                        "Choose another file name.", field="config file")
    cfg = config_from_values(values)
    cfg.save(path)
    from tunesmith.app.commands import train_command

    message = f'{text("saved_config", lang, path=path)} {text("train_it", lang, cmd=train_command(str(path)))}'
    return {STATUS_ID: ok_html(message), CONFIG_PATH_ID: str(path),
            "top/download": Update(value=str(path), visible=True)}


def form_update(cfg: RunConfig) -> dict:
    """Every form widget set from ``cfg``."""
    return values_from_config(cfg)


def load_config(values: dict, settings: AppSettings) -> dict:
    """Read the YAML at the typed path (inside the allowed folders) into every tab."""
    path = resolve_user_path(values.get(CONFIG_PATH_ID) or "", settings.allowed_roots(), what="config file")
    cfg = check_config(RunConfig.load(path), settings)  # a YAML can name any path: the same check as Start
    return {**form_update(cfg), STATUS_ID: ok_html(text("loaded_config", lang_of(values), path=path))}


def load_uploaded_config(values: dict, settings: AppSettings) -> dict:
    """Read an uploaded YAML (gradio's temp copy; it is only read, never stored)."""
    upload = values.get("top/upload_cfg")
    if not upload:
        return {}
    path = Path(upload if isinstance(upload, str) else getattr(upload, "name", ""))
    if path.stat().st_size > 1_000_000:
        raise ConfigError(f"{path.name} is larger than 1 MB; that is not a run config.", "Upload a run config YAML.")
    cfg = check_config(RunConfig.load(path), settings)
    return {**form_update(cfg), STATUS_ID: ok_html(text("loaded_config", lang_of(values), path=path.name)),
            "top/upload_cfg": None}


def apply_preset(values: dict, settings: AppSettings) -> dict:
    """Load a preset (presets/NAME.yaml) into every tab."""
    from tunesmith.core.presets import load_config as load_preset

    name = values.get("model/preset") or ""
    if not name:
        raise UserError("no preset chosen.", "Pick one from the Preset list.", field="preset")
    cfg = load_preset(name)
    from tunesmith.app.commands import copy_cfg_command

    return {**form_update(cfg), "model/status": ok_html(text("preset_applied", lang_of(values), name=name)),
            "model/cmd": copy_cfg_command(name, str(settings.home / "configs"))}


def change_lang(values: dict, registered_ids: list[str]) -> dict:
    """Relabel every registered widget that has an entry in the locale table.

    Buttons and headings get a new ``value`` (their text); inputs keep the user's value and get a
    new ``label``/``info``/``placeholder``.
    """
    lang = lang_of(values)
    known = set(LOCALES["en"])
    out = {}
    for elem_id in registered_ids:
        if elem_id not in known and "." not in elem_id:
            continue
        entry = props(elem_id, lang)
        if entry:
            out[elem_id] = Update(**entry)
    return out
