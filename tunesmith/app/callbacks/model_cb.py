"""Model tab: local models, presets, GGUF import, model facts and the trust_remote_code warning."""

from __future__ import annotations

from tunesmith.app import commands
from tunesmith.app.callbacks.common import check_source, import_transformers_once, lang_of
from tunesmith.app.locales import text
from tunesmith.app.registry import Update, ok_html
from tunesmith.app.render_data import facts_html
from tunesmith.app.security import resolve_user_path, sanitize_filename
from tunesmith.app.settings import AppSettings
from tunesmith.core.config import EMBEDDED_MODEL
from tunesmith.core.errors import UserError


def local_models(settings: AppSettings) -> list[str]:
    """The embedded model plus model folders (with config.json) under models/ and exports/."""
    found = [EMBEDDED_MODEL]
    for parent in (settings.home / "models", settings.exports_dir):
        if not parent.is_dir():
            continue
        for child in sorted(parent.iterdir()):
            if child.is_dir() and not child.name.startswith(".") and (child / "config.json").is_file():
                if child.name != "SmolLM2-135M-Instruct" or parent != settings.home / "models":
                    found.append(str(child))
    return found


def preset_choices() -> list[str]:
    from tunesmith.core.presets import list_presets

    return list_presets()


def refresh_local(values: dict, settings: AppSettings) -> dict:
    return {"model/local": Update(choices=local_models(settings))}


def pick_local(values: dict, settings: AppSettings) -> dict:
    choice = values.get("model/local")
    return {"model.name_or_path": choice} if choice else {}


def trust_warning(values: dict) -> dict:
    """A visible warning whenever trust_remote_code is on."""
    on = bool(values.get("model.trust_remote_code"))
    return {"model/trust_warning": Update(value=text("trust_warning", lang_of(values)) if on else "", visible=on)}


def read_facts(values: dict, settings: AppSettings) -> dict:
    """Parameters, layers, hidden size, vocabulary, context and dtype from config.json (no weights)."""
    import_transformers_once()
    from tunesmith.core.model import model_facts

    name = check_source(values.get("model.name_or_path") or "", settings, "model", allow_embedded=True)
    facts = model_facts(name)
    return {"model/facts": facts_html(facts, lang_of(values)), "model/cmd": commands.model_info_command(name), "model/status": ""}


def import_gguf(values: dict, settings: AppSettings) -> dict:
    """Import a GGUF file into models/<name> and select it (about 30 s for a small model)."""
    import_transformers_once()
    from tunesmith.core.gguf_import import import_gguf as do_import

    src = resolve_user_path(values.get("model/gguf_path") or "", settings.allowed_roots(), what="GGUF file")
    if src.suffix.lower() != ".gguf":
        raise UserError(f"{src.name} is not a .gguf file.", "Give a file written by llama.cpp (NAME.gguf).",
                        field="GGUF file")
    out = settings.home / "models" / sanitize_filename(src.stem)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} already exists; nothing was overwritten.",
                        "Pick it from Local models, or rename the GGUF file.", field="GGUF file")
    folder = do_import(src, out)
    return {"model.name_or_path": str(folder), "model/local": Update(choices=local_models(settings), value=str(folder)),
            "model/status": ok_html(text("gguf_imported", lang_of(values), path=folder)),
            "model/cmd": commands.import_gguf_command(str(src), str(out))}
