"""Train tab: preview command, Start / Stop / Resume, the busy-GPU question, polling a run folder.

The GUI never trains in its own process: Start validates the form and calls
``tunesmith.core.train.launcher.launch``, which starts the trainer in its own process group. Everything
shown afterwards is read from the run folder on each timer tick, so a closed tab, a reloaded page
or a restarted app changes nothing for the run, and :func:`on_load` re-attaches to it.
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path

from tunesmith.app import commands
from tunesmith.app.callbacks.common import app_folders, check_config, check_run_folder, lang_of, problems_html
from tunesmith.app.locales import text
from tunesmith.app.plots import metric_frames, series_name, y_title
from tunesmith.app.registry import Update, ok_html
from tunesmith.app.render_train import (failure_html, fmt_seconds, log_html, phase_text, progress_html, run_choice, run_elapsed,
                                        samples_html, useful_log_lines)
from tunesmith.app.run_queue import active_runs, enqueue
from tunesmith.app.security import sanitize_filename
from tunesmith.app.settings import AppSettings
from tunesmith.core.config import RunConfig
from tunesmith.core.errors import UserError
from tunesmith.core.train.rundir import QUEUED

CURRENT = "train/current"
SEEN = "train/seen"
PLANNED = "train/planned"  # the run folder Preview showed, kept for Start
STATUS = "train/status"
BANNER_IDS = ("top/banner", "top/banner_row")
STOP_IDS = ("train/stop_btn", "train/force_btn")
LIVE_STATES = ("starting", "running", "stopping", QUEUED)


def stop_buttons(state: str | None) -> dict:
    """Stop and Force stop are live (red) only while the watched run is: bright red and clickable with
    nothing running invited a click that could only say "not running"."""
    live = state in LIVE_STATES
    return {b: Update(interactive=live, variant="stop" if live else "secondary") for b in STOP_IDS}
PLOT_IDS = {"loss": "train/plot_loss", "lr": "train/plot_lr", "grad": "train/plot_grad",
            "tps": "train/plot_tps", "mem": "train/plot_mem"}


class InvalidConfig(UserError):
    """The form has problems; ``problems`` lists every one (each names its field)."""

    def __init__(self, problems: list):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s): " + "; ".join(str(p) for p in problems))


def build_valid_config(values: dict, settings: AppSettings) -> RunConfig:
    """The form as a RunConfig, or InvalidConfig listing every problem at once (paths outside the
    allowed folders, wrong types, impossible values, missing packages), each naming its field.
    The form is built once; tunesmith.core.preflight checks it once."""
    from tunesmith.app.form import config_from_values
    from tunesmith.core import preflight

    try:
        cfg = config_from_values(values)
    except UserError as exc:  # a wrong type stops the build itself
        raise InvalidConfig([exc]) from None
    path_problems = []
    try:
        cfg = check_config(cfg, settings)
    except UserError as exc:
        path_problems.append(exc)
    problems = path_problems + [p for p in preflight.problems(cfg, check_paths=not path_problems)
                                if not (path_problems and p.field in ("model.name_or_path", "data.path"))]
    if problems:
        raise InvalidConfig(problems)
    return cfg


def plan_run_dir(cfg: RunConfig, settings: AppSettings) -> Path:
    """``output.run_dir`` when set (checked to be one of the runs list), else a new
    ``RUNS/<name>-<time>`` folder that does not exist yet."""
    if cfg.output.run_dir:
        return check_run_folder(cfg.output.run_dir, settings, must_exist=False, field="output.run_dir")
    name = sanitize_filename(cfg.output.name or cfg.default_name())
    base = settings.runs_root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{n}")
        n += 1
    return path


def warnings_html(cfg: RunConfig) -> str:
    """tunesmith.core.preflight.warnings(): values that run, but probably not as the user hopes (the CLI prints them too)."""
    from html import escape

    from tunesmith.core import preflight

    return "".join(f'<div class="ts-muted">⚠ {escape(w)}</div>' for w in preflight.warnings(cfg))


def _fail(values: dict, exc: InvalidConfig) -> dict:
    return {STATUS: problems_html(exc.problems, text("problems", lang_of(values)))}


def planned_run_dir(values: dict, cfg: RunConfig, settings: AppSettings) -> Path | None:
    """The folder Preview showed, when Start may still use it: Start planning its own from the clock named a
    second folder (…193923) than the preview (…193920). Only a new folder of the runs list, named for this cfg."""
    planned = str(values.get(PLANNED) or "").strip()
    if not planned or cfg.output.run_dir:
        return None
    path = Path(planned)
    name = sanitize_filename(cfg.output.name or cfg.default_name())
    if path.parent.resolve() != settings.runs_root.resolve() or not path.name.startswith(f"{name}-") or path.exists():
        return None
    return path


def preview_command(values: dict, settings: AppSettings) -> dict:
    """The exact trainer command Start would run, and the same run from the CLI."""
    from tunesmith.core.train.commands import build_command, display

    try:
        cfg = build_valid_config(values, settings)
    except InvalidConfig as exc:
        return _fail(values, exc)
    run_dir = planned_run_dir(values, cfg, settings) or plan_run_dir(cfg, settings)
    name = sanitize_filename(cfg.output.name or cfg.default_name())
    yaml_path = settings.home / "configs" / "generated" / f"{name}.yaml"
    cfg.save(yaml_path)  # an app-owned file, so the command below runs as shown
    shown = (f"# Same run from a terminal (the form saved as {yaml_path}):\n"
             f"{commands.train_command(str(yaml_path), work_dir=str(run_dir))}\n\n"
             f"# What Start runs (in its own process group, logging to {run_dir}/train.log):\n"
             f"{display(build_command(cfg, run_dir))}")
    return {"train/cmd": shown, PLANNED: str(run_dir),
            STATUS: ok_html(text("valid", lang_of(values))) + warnings_html(cfg)}


def start(values: dict, settings: AppSettings) -> dict:
    """Start a run from the form; when one is already going, ask whether to stop it or queue."""
    try:
        cfg = build_valid_config(values, settings)
    except InvalidConfig as exc:
        return _fail(values, exc)
    busy = _busy(settings)
    if busy:
        return {"train/confirm": Update(visible=True), STATUS: ""}
    return _launch(values, settings, cfg, planned_run_dir(values, cfg, settings), checked=True)


def _launch(values: dict, settings: AppSettings, cfg: RunConfig, run_dir: Path | None = None, *,
            checked: bool = False) -> dict:
    """``checked``: build_valid_config ran tunesmith.core.preflight on this cfg just now (Start), so launch() need not."""
    from tunesmith.core.train.launcher import launch

    run_dir = run_dir or plan_run_dir(cfg, settings)
    cfg = check_config(cfg, settings, run_dir=run_dir)  # whatever built cfg (form, run config, YAML)
    handle = launch(cfg, run_dir, checked=checked)
    return {CURRENT: str(handle.run_dir), SEEN: "", PLANNED: "", "train/confirm": Update(visible=False),
            STATUS: ok_html(text("run_started", lang_of(values), run=handle.run_dir.name)),
            "train/cmd": run_command(handle.run_dir, resume=bool(cfg.training.resume_from)),
            **refresh_runs(values, settings, str(handle.run_dir))}


def queue(values: dict, settings: AppSettings) -> dict:
    """Queue the form's run to start when the active run ends (the app's queue thread starts it)."""
    try:
        cfg = build_valid_config(values, settings)
    except InvalidConfig as exc:
        return _fail(values, exc)
    busy = _busy(settings)
    after = busy[0]["name"] if busy else ""
    run_dir = enqueue(cfg, planned_run_dir(values, cfg, settings) or plan_run_dir(cfg, settings), after)
    return {CURRENT: str(run_dir), SEEN: "", PLANNED: "", "train/confirm": Update(visible=False),
            STATUS: ok_html(text("run_queued", lang_of(values), run=after or "-")),
            **refresh_runs(values, settings, str(run_dir))}


def stop_and_start(values: dict, settings: AppSettings) -> dict:
    """Stop every active run, and queue this one so it starts as soon as they have saved and exited."""
    from tunesmith.core.train.launcher import attach

    for run in _busy(settings):
        attach(run["run_dir"]).stop()
    return queue(values, settings)


def _busy(settings: AppSettings) -> list[dict]:
    """Active runs of the runs list (the app's own folders never count, whatever files they hold)."""
    own = app_folders(settings)
    return [r for r in active_runs(settings.runs_root) if Path(r["run_dir"]).resolve() not in own]


def gui_runs(settings: AppSettings) -> list[dict]:
    """The runs list: list_runs of the runs root without the app's own folders and symlinked folders
    (the same rule as :func:`tunesmith.app.callbacks.common.check_run_folder`)."""
    from tunesmith.core.train.launcher import list_runs

    root, own = settings.runs_root.expanduser().resolve(), app_folders(settings)
    return [r for r in list_runs(settings.runs_root)
            if Path(r["run_dir"]).parent == root and Path(r["run_dir"]) not in own]


def cancel_start(values: dict, settings: AppSettings) -> dict:
    return {"train/confirm": Update(visible=False)}


def _current(values: dict, settings: AppSettings) -> Path:
    """The watched run. The hidden box is whatever the browser sends, so it is checked against the
    runs list on every call (never "any allowed folder": an upload folder holding a status.json)."""
    current = (values.get(CURRENT) or "").strip()
    if not current:
        raise UserError(text("no_run", lang_of(values)), "Start a run, or open one from the list of runs.")
    return check_run_folder(current, settings)


def stop(values: dict, settings: AppSettings) -> dict:
    """Graceful stop (checkpoint, then exit). Pressing it again only says the stop is under way:
    a double-click must not throw away the work since the last checkpoint (that is Force stop)."""
    from tunesmith.core.train.launcher import attach

    run_dir = _current(values, settings)
    outcome = attach(run_dir).stop()
    key = {"stopping": "run_stopping", "already stopping": "run_already_stopping",
           "not running": "run_not_running", "dequeued": "state_stopped"}[outcome]
    return {STATUS: ok_html(text(key, lang_of(values))), SEEN: "", "train/cmd": commands.stop_command(str(run_dir))}


def force_stop(values: dict, settings: AppSettings) -> dict:
    """Kill the watched run at once (its own button, never a second Stop): only processes proven to be
    this run's trainer are signalled; the work since the last checkpoint is lost."""
    from tunesmith.core.train.launcher import attach

    run_dir = _current(values, settings)
    lang = lang_of(values)
    killed = attach(run_dir).kill()
    if killed.dequeued:
        return {STATUS: ok_html(text("state_stopped", lang)), SEEN: ""}
    message = text("run_force_stopped", lang, n=len(killed)) if killed else text("run_not_running", lang)
    return {STATUS: ok_html(message), SEEN: "", "train/cmd": commands.stop_command(str(run_dir), force=True)}


def resume(values: dict, settings: AppSettings) -> dict:
    """Continue the watched run from its latest complete checkpoint, in the same folder."""
    from tunesmith.core.train.rundir import RunDir

    run_dir = _current(values, settings)
    rd = RunDir(run_dir)
    if rd.latest_checkpoint() is None:
        raise UserError(text("nothing_to_resume", lang_of(values)), "Start it again from the beginning instead.")
    cfg = RunConfig.load(rd.config_path)
    cfg.training.resume_from = "latest"
    # config.yaml is a file on disk, not the form Start checked: it passes the same check first.
    cfg = check_config(cfg, settings, run_dir=run_dir)
    busy = _busy(settings)
    if busy:
        enqueue(cfg, run_dir, busy[0]["name"])
        return {STATUS: ok_html(text("run_queued", lang_of(values), run="-")), SEEN: ""}
    return _launch(values, settings, cfg, run_dir)


def refresh_runs(values: dict, settings: AppSettings, select: str | None = None) -> dict:
    """The list of runs (newest first) for the drop-down."""
    choices = [run_choice(r, lang_of(values)) for r in gui_runs(settings)]
    update = Update(choices=choices)
    if select:
        update["value"] = select
    return {"train/runs": update}


def open_run(values: dict, settings: AppSettings) -> dict:
    chosen = values.get("train/runs")
    if not chosen:
        raise UserError(text("no_run", lang_of(values)), "Pick a run from the list.")
    run_dir = check_run_folder(chosen, settings)
    return {CURRENT: str(run_dir), SEEN: "", STATUS: "", "train/cmd": run_command(run_dir)}


def run_command(run_dir, resume: bool = False) -> str:
    """The CLI line that trains this run from its own config.yaml (what Start shows; empty without one)."""
    from tunesmith.core.train.rundir import RunDir

    config = RunDir(run_dir).config_path
    return commands.train_command(str(config), work_dir=str(run_dir), resume=resume) if config.is_file() else ""


def on_load(values: dict, settings: AppSettings, only: list[str] | None = None) -> dict:
    """Page (re)load: re-attach to a run that is still going (or waiting), whatever the browser was,
    and show that run's config in the form (the page forgot what was typed before the reload).
    ``only``: the form ids the page has (a config field without a widget must not fail the load)."""
    runs = gui_runs(settings)
    live = [r for r in runs if r["state"] in LIVE_STATES]
    out = {"train/runs": Update(choices=[run_choice(r, lang_of(values)) for r in runs])}
    if live and not values.get(CURRENT):
        out[CURRENT] = live[0]["run_dir"]
        out["train/runs"]["value"] = live[0]["run_dir"]
        out[SEEN] = ""
        out["train/cmd"] = run_command(live[0]["run_dir"])
        out.update(stop_buttons(live[0]["state"]))  # live at once, not a timer tick after the reload
        try:
            out.update({k: v for k, v in form_of_run(live[0]["run_dir"]).items() if only is None or k in only})
        except UserError:
            pass  # a config that no longer loads: still watch the run
    return out


def form_of_run(run_dir: str) -> dict:
    """Form values from a run's config.yaml (output.run_dir cleared: a new Start makes a new folder)."""
    from tunesmith.app.form import values_from_config

    cfg = RunConfig.load(Path(run_dir) / "config.yaml")
    cfg.output.run_dir = ""
    cfg.training.resume_from = ""
    return values_from_config(cfg)


def plot_update(frame, title: str, plot: str = "loss", lang: str = "en", log_scale: bool = False) -> Update:
    """A LinePlot update. gradio's plot builds its chart spec (axis types, colour domain) on the first
    data it gets and on prop changes only, so: no data is sent as None (never an empty, untyped
    frame), and ``colors_in_legend`` lists the series present, so a series that appears later
    (eval loss) rebuilds the spec. One series needs no legend (its title would read "series");
    steps tick as whole numbers, values in a readable format, and a lone point shows as a dash."""
    from tunesmith.app.plots import COLORS, PLOTS, Y_FORMATS, plot_frame, series_name

    if frame is None or len(frame) == 0:
        return Update(value=None, y_title=title)
    series = sorted(set(frame["series"]))
    shown, x_lim = plot_frame(frame)
    colors = {series_name(name, lang): COLORS[name] for _key, name in PLOTS[plot]}
    return Update(value=shown, y_title=title, x_title=text("axis_step", lang), x_lim=x_lim, x_axis_format="d",
                  y_axis_format=".2~f" if log_scale else Y_FORMATS[plot], color_title="",
                  colors_in_legend=series if len(series) > 1 else [], color_map=colors)


def go_to_train(values: dict) -> dict:
    return {"top/tabs": Update(selected="tab/train")}


def banner(values: dict, settings: AppSettings) -> dict:
    """The line above every tab while a run is active (hidden otherwise): which run, and how far."""
    from tunesmith.core.train.rundir import RunDir

    busy = [r for r in _busy(settings) if r.get("state") != QUEUED]
    if not busy:
        return {"top/banner": "", "top/banner_row": Update(visible=False)}
    lang, run = lang_of(values), busy[0]
    status = RunDir(run["run_dir"]).read_status()
    phase, _frac = phase_text(status, lang)
    progress = phase or text("eta_none", lang, step=status.get("step") or 0, total=status.get("total_steps") or "?",
                             elapsed=fmt_seconds(run_elapsed(status)))
    shown = text("banner", lang, run=run["name"], progress=progress)
    return {"top/banner": f'<div class="ts-banner-text" data-run="{escape(run["name"])}">{escape(shown)}</div>',
            "top/banner_row": Update(visible=True)}


def poll(values: dict, settings: AppSettings) -> dict:
    """One timer tick: progress, plots (only when new metrics arrived), log tail, samples, failure,
    and the banner every tab shows while a run is active."""
    from tunesmith.core.train.jsonl_tail import read_appended
    from tunesmith.core.train.launcher import attach
    from tunesmith.core.train.rundir import RunDir

    current = (values.get(CURRENT) or "").strip()
    if not current:
        return {**banner(values, settings), **stop_buttons(None)}
    rd = RunDir(check_run_folder(current, settings))  # status() may write status.json: runs only
    status = attach(rd.path).status()
    rows = read_appended(rd.metrics_path)  # only the lines appended since the last tick are parsed
    samples = read_appended(rd.samples_path)
    log_scale = bool(values.get("train/log_scale"))
    lang = lang_of(values)
    log_lines = rd.log_tail(60)
    useful, hidden = useful_log_lines(rd.log_tail(200))
    title = f"{rd.log_path.name} · {rd.log_path}" + (" · " + text("log_hidden", lang, n=hidden) if hidden else "")
    out = {"train/progress": progress_html(status, rows[-1] if rows else None, lang, rd.path.name),
           "train/log": log_html(useful[-60:], title),
           "train/failure": failure_html(status, log_lines, lang)}
    seen = f"{rd.path}|{len(rows)}|{log_scale}|{lang}|{len(samples)}|{status.get('state')}"
    if seen != values.get(SEEN):
        frames = metric_frames(rows, log_scale=log_scale, lang=lang)
        for plot, elem_id in PLOT_IDS.items():
            out[elem_id] = plot_update(frames[plot], y_title(plot, log_scale, lang), plot, lang, log_scale)
        out["train/samples"] = samples_html(samples, lang=lang)
        points = int((frames["loss"]["series"] == series_name("loss", lang)).sum())
        shown = text("loss_points", lang, n=points)
        out["train/points"] = f'<span class="ts-muted" data-points="{points}">{shown}</span>'
        if seen.rsplit("|", 1)[-1] != str(values.get(SEEN) or "").rsplit("|", 1)[-1]:
            out.update(refresh_runs(values, settings, str(rd.path)))  # the state changed: relabel the list
        else:  # new steps: the list's "running · 3/12" follows (choices only: a pick being made stays)
            out.update(refresh_runs(values, settings))
        out[SEEN] = seen
    out.update(banner(values, settings))
    out.update(stop_buttons(status.get("state")))
    return out
