"""Data tab: demo sets, uploads, column detection with a map_fn suggestion, and the preview."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tunesmith.app import commands
from tunesmith.app.callbacks.common import check_source, lang_of, tokenizer_for
from tunesmith.app.form import COLUMN_IDS, config_from_values
from tunesmith.app.locales import text
from tunesmith.app.registry import Update, error_html, ok_html
from tunesmith.app.render_data import histogram_frame, preview_html, stats_html
from tunesmith.app.security import store_upload
from tunesmith.app.settings import AppSettings
from tunesmith.core.errors import DataError
from tunesmith.core.paths import assets_dir
from tunesmith.core.refs import is_hub_ref

DEMO_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt")
PEEK_JSON_LIMIT = 64 * 2**20


IDENTITY_TEMPLATE = "identity.template.json"


def demo_choices() -> list[tuple[str, str]]:
    """Bundled demo data sets as drop-down ``(label, path)`` pairs: files to train on as they are, so not
    the identity template (its ``{{name}}`` placeholders are filled by "Teach it its name") nor test sets.

    e.g. ``[("identity.json", "/…/assets/identity.json"), ...]``
    """
    folder = assets_dir()
    if not folder.is_dir():
        return []
    return [(p.name, str(p)) for p in sorted(folder.iterdir())
            if p.suffix.lower() in DEMO_SUFFIXES and p.is_file() and ".template." not in p.name
            and not p.stem.endswith("_test")]


def demo_for_path(path) -> str | None:
    """The demo drop-down's value for a data path (a preset names it relative to the project folder).

    >>> demo_for_path("assets/identity.json") == str(assets_dir() / "identity.json"), demo_for_path("x.csv")
    (True, None)
    """
    if not path:
        return None
    from tunesmith.core import paths

    typed = Path(str(path)).expanduser()
    full = typed if typed.is_absolute() else paths.PACKAGE_ROOT / typed
    demos = [p for _, p in demo_choices()]
    return next((p for p in demos if Path(p).resolve() == full.resolve()), None)


def _fill(value, name: str, author: str):
    if isinstance(value, str):
        return value.replace("{{name}}", name).replace("{{author}}", author)
    if isinstance(value, list):
        return [_fill(v, name, author) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, name, author) for k, v in value.items()}
    return value


def make_identity(values: dict, settings: AppSettings) -> dict:
    """"Teach it its name": the bundled identity questions answered with the name and author typed,
    written to the uploads folder and chosen as the data set."""
    from tunesmith.core.errors import UserError

    from tunesmith.app.security import sanitize_filename

    lang = lang_of(values)
    name = " ".join(str(values.get("data/id_name") or "").split())
    author = " ".join(str(values.get("data/id_author") or "").split())
    if not name or not author:
        raise UserError(text("identity_missing", lang), text("identity_missing_fix", lang), field="data/id_name")
    template = json.loads((assets_dir() / IDENTITY_TEMPLATE).read_text(encoding="utf-8"))
    target = settings.uploads_dir / sanitize_filename(f"identity-{name}.json")
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_fill(template, name, author), ensure_ascii=False, indent=1), encoding="utf-8")
    return {"data.path": str(target), "data.map_fn": "openai",
            "data/status": ok_html(text("identity_made", lang, n=len(template), name=name, path=target))}


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
        if p.is_file() and suffix in (".csv", ".tsv"):
            from tunesmith.core.data.loading import csv_delimiter

            # the same separator the engine's loader sniffs (`;` files are common where `,` is a decimal mark)
            sep = "\t" if suffix == ".tsv" else csv_delimiter(p)
            with open(p, encoding="utf-8", newline="") as fh:
                row = next(csv.DictReader(fh, delimiter=sep), None) or {}
            return list(row), dict(row)
        if p.is_file() and suffix == ".txt":
            return ["text"], {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass  # let the engine's loader name the exact line / byte below
    from tunesmith.core.data.loading import load_rows

    ds = load_rows(str(path), split=split)
    return list(ds.column_names), dict(ds[0]) if ds.num_rows else {}


# What a new file (or a failed one) takes off the screen: the previous file's preview and command.
# The last preview's statistics as data, so a language switch can draw the table again without re-reading the file.
STATS = "data/stats_raw"
CLEARED = {"data/preview": "", "data/stats": "", "data/hist": None, "data/cmd": "", STATS: None}
INSPECT_OUT = ["data/suggest", "data.map_fn", "data/columns", *COLUMN_IDS.values(), *CLEARED]


def injected_system(map_fn: str) -> str:
    """The system prompt a map_fn writes into every row by itself ("" when it adds none, or takes
    it from a column of the file).

    >>> injected_system("law_reference")[:6], injected_system("columns"), injected_system("openorca")
    ('你现在是一名', '', '')
    """
    from tunesmith.core.data.map_fns import MAP_FNS

    found = MAP_FNS.get(map_fn)
    if found is None:
        return ""
    try:
        turns = found.fn({c: "x" for c in found.required}).get("conversation") or []
    except Exception:  # a map_fn that wants real content to run: no probe, no claim
        return ""
    system = str(turns[0].get("system") or "").strip() if turns and isinstance(turns[0], dict) else ""
    return "" if system in ("", "x") else system


def suggestion_text(columns: list[str], suggestion: str | None, mapping: dict, lang: str) -> str:
    """The line under the path: the columns read, the row format chosen, and what it does."""
    shown = ", ".join(columns) or "-"
    if not suggestion:
        return text("no_suggestion", lang, columns=shown)
    if suggestion == "columns" and mapping:
        pairs = ", ".join(f"{text('role_' + role, lang)} = {col}" for role, col in mapping.items())
        return text("suggested_columns", lang, columns=shown, mapping=pairs)
    line = text("suggested", lang, columns=shown, map_fn=suggestion)
    system = injected_system(suggestion)
    return line + (" " + text("suggested_system", lang, system=_short(system)) if system else "")


def _short(value: str, limit: int = 60) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[:limit - 1] + "…"


def inspect_data(values: dict, settings: AppSettings) -> dict:
    """After the path changes: list the columns, suggest a map_fn (a plain column mapping for generic
    columns), offer the columns for mapping; the previous file's preview leaves the screen."""
    from tunesmith.core.data.map_fns import suggest_map_fn
    from tunesmith.core.data.map_fns import suggest_columns
    from tunesmith.core.errors import UserError

    raw = (values.get("data.path") or "").strip()
    if not raw:
        return {"data/suggest": "", **CLEARED}
    lang = lang_of(values)
    try:
        path = check_source(raw, settings, "dataset")
        if is_hub_ref(path):
            return {"data/suggest": "", "data/status": "", **CLEARED}
        columns, first = peek_columns(path, values.get("data.split") or "train")
    except UserError as exc:  # the last file's preview and columns must not look like this file's
        return {"data/suggest": "", **CLEARED, "data/status": error_html(gui_error(exc, lang), lang)}
    suggestion = suggest_map_fn(columns, first)
    mapping = suggest_columns(columns) if suggestion == "columns" else {}
    choices = [""] + columns + [v for v in mapping.values() if v not in columns]  # e.g. instruction+input
    out: dict = {"data/status": "", **CLEARED,
                 **{wid: Update(choices=choices, value=mapping.get(role, "")) for role, wid in COLUMN_IDS.items()}}
    out["data/suggest"] = suggestion_text(columns, suggestion, mapping, lang)
    if suggestion:
        out["data.map_fn"] = suggestion  # a new file: the old format is most likely wrong for it
        if mapping:
            out["data/columns"] = Update(open=True)  # show the mapping it chose
    else:
        out["data.map_fn"] = "columns"
        out["data/columns"] = Update(open=True)
    return out


def relabel_stats(values: dict) -> dict:
    """The language changed: the statistics table and the histogram's axes in the new language.

    >>> relabel_stats({"top/lang": "zh", STATS: None})
    {}
    >>> "<td>行数</td><td>3</td>" in relabel_stats({"top/lang": "zh", STATS: {"rows": 3}})["data/stats"]
    True
    """
    stats, lang = values.get(STATS), lang_of(values)
    if not stats:
        return {}
    return {"data/stats": stats_html(stats, lang),
            "data/hist": Update(x_title=text("hist_x", lang), y_title=text("hist_y", lang))}


def relabel_suggest(values: dict, settings: AppSettings) -> dict:
    """The language changed: the columns line again, in the new language (nothing else is re-chosen)."""
    from tunesmith.core.data.map_fns import suggest_columns
    from tunesmith.core.errors import UserError

    raw = (values.get("data.path") or "").strip()
    if not raw:
        return {}
    try:
        path = check_source(raw, settings, "dataset")
        if is_hub_ref(path):
            return {}
        columns, _first = peek_columns(path, values.get("data.split") or "train")
    except UserError:
        return {}
    chosen = values.get("data.map_fn") or ""
    mapping = {r: values.get(w) for r, w in COLUMN_IDS.items() if values.get(w)} if chosen == "columns" else {}
    return {"data/suggest": suggestion_text(columns, chosen or None, mapping or suggest_columns(columns),
                                            lang_of(values))}


def gui_error(exc, lang: str):
    """An engine error whose fix names a CLI flag (``--columns``) points at the page's drop-downs instead."""
    from tunesmith.core.errors import UserError

    fix = getattr(exc, "fix", "") or ""
    if "--columns" in fix:
        return UserError(exc.message, text("fix_map_columns", lang), field=getattr(exc, "field", None))
    return exc


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
    from tunesmith.core.data.templates import template_for_model

    model = values.get("model.name_or_path") or ""
    if (values.get("data.template") or "auto") != "auto" or not model:
        return {"data/template_hint": ""}
    return {"data/template_hint": f"auto → **{template_for_model(model)}**"}


def run_preview(values: dict, settings: AppSettings, n: int = 3) -> dict:
    """Map, template and tokenize a few samples; highlight what is trained on; show statistics. A failed
    preview takes the previous one off the screen (it described another file or format)."""
    from tunesmith.core.errors import UserError

    lang = lang_of(values)
    try:
        return _preview(values, settings, n)
    except UserError as exc:
        return {**CLEARED, "data/status": error_html(gui_error(exc, lang), lang)}


def system_note(cfg, samples, lang: str) -> str:
    """Where the previewed rows' system prompt comes from, when they have one: the map_fn (named) or the
    System prompt box; a file's own system column needs no note."""
    from html import escape

    has_system = any(isinstance(t, dict) and t.get("system") for s in samples
                     for t in ((s.get("conversation") if isinstance(s, dict) else getattr(s, "conversation", None))
                               or [])[:1])
    if not has_system:
        return ""
    injected = injected_system(cfg.data.map_fn)
    if injected:
        shown = text("system_by_map_fn", lang, map_fn=cfg.data.map_fn, system=_short(injected))
    elif cfg.data.system:
        shown = text("system_by_box", lang)
    else:
        return ""
    return f'<div class="ts-change" data-system-from="{escape(cfg.data.map_fn if injected else "box")}">{escape(shown)}</div>'


def _preview(values: dict, settings: AppSettings, n: int) -> dict:
    from tunesmith.core.data.preview import preview

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
        "data/preview": system_note(cfg, result.samples, lang) + preview_html(result.samples) + _warnings_html(result),
        "data/stats": stats_html(stats, lang),
        STATS: stats,
        "data/hist": Update(value=histogram_frame(stats), x_title=text("hist_x", lang), y_title=text("hist_y", lang)),
        "data/status": ok_html(text("preview_ok", lang, kept=kept, rows=rows, supervised=supervised)),
        "data/cmd": commands.check_dataset_command(cfg),
    }


def _warnings_html(result) -> str:
    from html import escape

    warnings = result.warnings() if hasattr(result, "warnings") else []
    return "".join(f'<div class="ts-muted">⚠ {escape(w)}</div>' for w in warnings)


def _attr(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
