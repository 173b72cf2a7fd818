"""Export tab: convert a run's checkpoint to a clean HF folder, or merge its adapter into the base.

The work runs in a thread inside the app (it is short and holds no GPU for long); its progress
callback feeds a queue that the generator turns into progress-bar updates.
"""

from __future__ import annotations

import queue
import threading
from html import escape
from pathlib import Path

from tunesmith.app import commands
from tunesmith.app.callbacks.common import check_source, import_transformers_once, lang_of
from tunesmith.app.locales import text
from tunesmith.app.registry import Update, ok_html
from tunesmith.app.render_train import run_choice
from tunesmith.app.security import resolve_user_path, sanitize_filename
from tunesmith.app.settings import AppSettings
from tunesmith.core.errors import UserError

MODES = ("merge", "convert", "gguf")
GGUF_TYPES = ("q8_0", "f16", "bf16", "f32", "q6_k", "q5_k_m", "q4_k_m", "q4_k_s", "q3_k_m", "q2_k")
DTYPES = ("fp16", "bf16", "fp32")
LATEST = "latest"


def run_choices(settings: AppSettings) -> list[tuple[str, str]]:
    """Runs that have at least one complete checkpoint."""
    from tunesmith.core.train.launcher import list_runs

    return [run_choice(r) for r in list_runs(settings.runs_root) if r.get("latest_checkpoint")]


def checkpoint_choices(run_dir: str) -> list[str]:
    """``latest`` plus the run's complete checkpoints, newest first."""
    from tunesmith.core.train.rundir import RunDir

    if not run_dir:
        return []
    return [LATEST] + [p.name for p in reversed(RunDir(run_dir).list_checkpoints())]


def refresh(values: dict, settings: AppSettings) -> dict:
    choices = run_choices(settings)
    current = values.get("export/run")
    value = current if current in [c[1] for c in choices] else (choices[0][1] if choices else None)
    return {"export/run": Update(choices=choices, value=value), **pick_run({**values, "export/run": value}, settings)}


def pick_run(values: dict, settings: AppSettings) -> dict:
    """A run was chosen: list its checkpoints and fill the base model from its config."""
    from tunesmith.core.config import RunConfig

    run_dir = values.get("export/run") or ""
    if not run_dir:
        return {"export/checkpoint": Update(choices=[], value=None)}
    base = ""
    cfg_path = Path(run_dir) / "config.yaml"
    if cfg_path.is_file():
        try:
            cfg = RunConfig.load(cfg_path)
            base = cfg.model.name_or_path
        except UserError:
            pass
    return {"export/checkpoint": Update(choices=checkpoint_choices(run_dir), value=LATEST), "export/base": base}


def _source(values: dict, settings: AppSettings) -> Path:
    if not values.get("export/run"):
        raise UserError("no run chosen.", "Pick a run from the Run list (runs with a saved checkpoint are listed; "
                        "press Refresh after a run finishes).", field="export")
    run_dir = resolve_user_path(values["export/run"], settings.allowed_roots(), what="run folder")
    ckpt = values.get("export/checkpoint") or LATEST
    if ckpt == LATEST:
        return run_dir
    path = (run_dir / "checkpoints" / ckpt).resolve()
    if path.parent != (run_dir / "checkpoints").resolve() or not path.is_dir():
        raise UserError(f"checkpoint {ckpt} is not in {run_dir}.", "Pick one from the Checkpoint list.")
    return path


def _out_dir(values: dict, settings: AppSettings, src: Path, mode: str) -> Path:
    typed = (values.get("export/out_dir") or "").strip()
    if typed:
        return resolve_user_path(typed, settings.allowed_roots(), must_exist=False, what="output folder")
    run_name = src.name if src.name != "checkpoints" else src.parent.name
    if src.parent.name == "checkpoints":
        run_name = f"{src.parent.parent.name}-{src.name}"
    base = settings.exports_dir / sanitize_filename(f"{run_name}-{mode}")
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def progress_bar(fraction: float, message: str, state: str = "run") -> str:
    return (f'<div class="ts-progress ts-{state}" data-frac="{fraction:.3f}">'
            f'<div class="ts-progress-head">{escape(message)}</div>'
            f'<div class="ts-bar"><div class="ts-fill" style="width:{fraction * 100:.1f}%"></div></div></div>')


def export(values: dict, settings: AppSettings):
    """Generator: yields progress updates, then the output folder (never overwrites anything)."""
    import_transformers_once()
    from tunesmith.core.export import convert_to_hf, merge_adapter

    mode = values.get("export/mode") or "merge"
    if mode not in MODES:
        raise UserError(f"unknown export mode {mode!r}.", f"Choose one of {', '.join(MODES)}.")
    dtype = values.get("export/dtype") or "fp16"
    shard = (values.get("export/shard") or "2GB").strip()
    src = _source(values, settings)
    out = _out_dir(values, settings, src, mode)
    if mode == "merge":
        base = check_source(values.get("export/base") or "", settings, "base model", allow_embedded=True)
        cmd = commands.merge_command(base, str(src), str(out), dtype, shard)
        work = lambda progress: merge_adapter(base, src, out, dtype=dtype, max_shard_size=shard,  # noqa: E731
                                              progress=progress)
    elif mode == "gguf":
        yield from _gguf(values, settings, src, out)
        return
    else:
        cmd = commands.convert_command(str(src), str(out), dtype, shard)
        work = lambda progress: convert_to_hf(src, out, dtype=dtype, max_shard_size=shard,  # noqa: E731
                                              progress=progress)
    yield {"export/cmd": cmd, "export/progress": progress_bar(0.0, "starting"), "export/status": ""}
    yield from run_with_progress(work, lang_of(values), settings)


def _gguf(values: dict, settings: AppSettings, src: Path, out: Path):
    """The GGUF export (tunesmith.core.export.gguf): OUT/NAME-QUANT.gguf + Modelfile; the last update names the file size."""
    from tunesmith.core.export.gguf import check_quant, convert_gguf

    quant = values.get("export/quant") or "q8_0"
    check_quant(quant)
    cmd = commands.show([*commands.PY, "convert", "gguf", str(src), str(out), "--quant", quant])
    yield {"export/cmd": cmd, "export/progress": progress_bar(0.0, "starting"), "export/status": ""}
    lang = lang_of(values)
    for update in run_with_progress(lambda progress: convert_gguf(src, out, quant=quant, progress=progress), lang,
                                    settings):
        if "export/last" in update:  # done: a file, not a model folder the Chat tab could load
            path = Path(update["export/last"])
            done = text("export_gguf_done", lang, path=path, size=f"{path.stat().st_size / 2**20:.1f} MiB")
            update = {**update, "export/status": ok_html(done),
                      "export/progress": progress_bar(1.0, text("export_finished", lang), "ok")}
            update.pop("chat/merged", None)
        yield update


def run_with_progress(work, lang: str, settings: AppSettings | None = None, poll: float = 0.3):
    """Run ``work(progress)`` in a thread and yield progress-bar updates until it returns or raises."""
    updates: queue.Queue = queue.Queue()
    result: dict = {}

    def target():
        try:
            result["out"] = work(lambda f, m: updates.put((f, m)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the generator below
            result["error"] = exc

    thread = threading.Thread(target=target, name="tunesmith-export", daemon=True)
    thread.start()
    last = (0.0, "starting")
    while thread.is_alive() or not updates.empty():
        try:
            last = updates.get(timeout=poll)
            yield {"export/progress": progress_bar(*last)}
        except queue.Empty:
            continue
    thread.join()
    if "error" in result:
        yield {"export/progress": progress_bar(last[0], last[1], "bad")}
        raise result["error"]
    out = result.get("out")
    # The status line below names the output; the bar repeating it printed "Done:" twice.
    yield {"export/progress": progress_bar(1.0, text("export_finished", lang), "ok"),
           "export/status": ok_html(text("export_done", lang, path=out)), "export/out_dir": "",
           "export/last": str(out), "chat/merged": str(out)}
