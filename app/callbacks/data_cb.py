"""Data tab: demo sets, uploads, column detection with a map_fn suggestion, and the preview."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from app import commands
from app.callbacks.common import check_source, lang_of, looks_like_hub_id, tokenizer_for
from app.form import COLUMN_IDS, config_from_values
from app.locales import text
from app.registry import Update, ok_html
from app.render_data import histogram_frame, preview_html, stats_html
from app.security import store_upload
from app.settings import AppSettings
from core.errors import DataError
from core.paths import assets_dir

DEMO_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt")
PEEK_JSON_LIMIT = 64 * 2**20


def demo_choices() -> list[tuple[str, str]]:
    """Bundled demo data sets as drop-down ``(label, path)`` pairs.

    e.g. ``[("identity.json", "/…/assets/identity.json"), ...]``
    """
    folder = assets_dir()
    if not folder.is_dir():
        return []
    return [(p.name, str(p)) for p in sorted(folder.iterdir()) if p.suffix.lower() in DEMO_SUFFIXES and p.is_file()]


def peek_columns(path: str, split: str = "train") -> tuple[list[str], dict]:
    """Column names and the first row, cheaply for json/jsonl/csv/txt (datasets only for the rest)."""
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    try:
        if p.is_file() and suffix == ".jsonl":
            with open(p, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        row = json.loads(line)
                        return (list(row), row) if isinstance(row, dict) else ([], {})
            return [], {}
        if p.is_file() and suffix == ".json" and p.stat().st_size < PEEK_JSON_LIMIT:
            data = json.loads(p.read_text(encoding="utf-8"))
            row = data[0] if isinstance(data, list) and data else data
            return (list(row), row) if isinstance(row, dict) else ([], {})
        if p.is_file() and suffix == ".csv":
            with open(p, encoding="utf-8", newline="") as fh:
                row = next(csv.DictReader(fh), None) or {}
            return list(row), dict(row)
        if p.is_file() and suffix == ".txt":
            return ["text"], {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass  # let the engine's loader name the exact line / byte below
    from core.data.loading import load_rows

    ds = load_rows(str(path), split=split)
    return list(ds.column_names), dict(ds[0]) if ds.num_rows else {}


def inspect_data(values: dict, settings: AppSettings) -> dict:
    """After the path changes: list the columns, suggest a map_fn, offer the columns for mapping."""
    from core.data.map_fns import suggest_map_fn

    raw = (values.get("data.path") or "").strip()
    if not raw:
        return {"data/suggest": ""}
    lang = lang_of(values)
    path = check_source(raw, settings, "dataset")
    if looks_like_hub_id(path):
        return {"data/suggest": "", "data/status": ""}
    columns, first = peek_columns(path, values.get("data.split") or "train")
    suggestion = suggest_map_fn(columns, first)
    shown = ", ".join(columns) or "-"
    out: dict = {"data/status": "", **{wid: Update(choices=[""] + columns) for wid in COLUMN_IDS.values()}}
    if suggestion:
        out["data/suggest"] = text("suggested", lang, columns=shown, map_fn=suggestion)
        out["data.map_fn"] = suggestion  # a new file: the old format is most likely wrong for it
    else:
        out["data/suggest"] = text("no_suggestion", lang, columns=shown)
        out["data.map_fn"] = "columns"
        out["data/columns"] = Update(open=True)
    return out


def pick_demo(values: dict, settings: AppSettings) -> dict:
    """A demo set was chosen: put its path in the box (the path's change event inspects it)."""
    demo = values.get("data/demo")
    return {"data.path": demo} if demo else {}


def upload(values: dict, settings: AppSettings) -> dict:
    """Store the uploaded file under the uploads folder with a safe name and use it."""
    src = values.get("data/upload")
    if not src:
        return {}
    src = src if isinstance(src, str) else getattr(src, "name", str(src))
    target = store_upload(src, Path(src).name, settings.uploads_dir, max_mb=settings.max_upload_mb)
    return {"data.path": str(target), "data/upload": None,
            "data/status": ok_html(text("uploaded", lang_of(values), path=target))}


def template_hint(values: dict) -> dict:
    """Show which template 'auto' stands for with the current model."""
    from core.data.templates import template_for_model

    model = values.get("model.name_or_path") or ""
    if (values.get("data.template") or "auto") != "auto" or not model:
        return {"data/template_hint": ""}
    return {"data/template_hint": f"auto → **{template_for_model(model)}**"}


def run_preview(values: dict, settings: AppSettings, n: int = 3) -> dict:
    """Map, template and tokenize a few samples; highlight what is trained on; show statistics."""
    from core.data.preview import preview

    cfg = config_from_values(values)
    if not cfg.data.path:
        raise DataError("no dataset given.", "Pick a demo set, upload a file or type a path.", field="data.path")
    cfg.data.path = check_source(cfg.data.path, settings, "dataset")
    cfg.model.name_or_path = check_source(cfg.model.name_or_path, settings, "model", allow_embedded=True)
    tokenizer = tokenizer_for(cfg.model.name_or_path, cfg.model.trust_remote_code)
    result = preview(cfg.data, tokenizer, model_name_or_path=cfg.model.name_or_path, stage=cfg.method.stage, n=n)
    stats = result.stats.to_dict() if hasattr(result.stats, "to_dict") else result.stats
    lang = lang_of(values)
    kept, rows = _attr(stats, "kept"), _attr(stats, "rows")
    supervised = _attr(stats, "supervised_share") or 0.0
    return {
        "data/preview": preview_html(result.samples) + _warnings_html(result),
        "data/stats": stats_html(stats),
        "data/hist": histogram_frame(stats),
        "data/status": ok_html(text("preview_ok", lang, kept=kept, rows=rows, supervised=supervised)),
        "data/cmd": commands.check_dataset_command(cfg),
    }


def _warnings_html(result) -> str:
    from html import escape

    warnings = result.warnings() if hasattr(result, "warnings") else []
    return "".join(f'<div class="ts-muted">⚠ {escape(w)}</div>' for w in warnings)


def _attr(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
