"""Train tab: command preview, Start / Stop / Resume, progress with ETA, live plots, log tail,
eval-chat samples, past runs, and re-attaching after a reload (timer-polled run folder)."""

from __future__ import annotations

from functools import partial

import gradio as gr

from app.callbacks import train_cb
from app.plots import PLOTS, y_title
from app.tabs.widgets import BuildContext, command_box, field, widget

POLL_SECONDS = 2.0


COLORS = {"loss": "#3b82f6", "eval loss": "#ef4444", "learning rate": "#8b5cf6", "grad norm": "#f59e0b",
          "tokens/s": "#22a06b", "peak memory MB": "#6b7280"}


def _plot(ctx: BuildContext, elem_id: str, plot: str) -> None:
    series = [name for _key, name in PLOTS[plot]]
    widget(ctx, elem_id, gr.LinePlot, is_input=False, x="step", y="value", color="series", height=220,
           y_title=y_title(plot, False), x_title="step", color_map={n: COLORS[n] for n in series}, value=None)


def build(ctx: BuildContext) -> None:
    with gr.Row(equal_height=True):
        widget(ctx, "train/runs", gr.Dropdown, choices=[], value=None, scale=4)
        with gr.Column(scale=1, min_width=120):
            widget(ctx, "train/open_btn", gr.Button, is_input=False, size="md")
            widget(ctx, "train/refresh_btn", gr.Button, is_input=False, size="sm")
    with gr.Row(equal_height=True):
        field(ctx, "output.name", scale=2)
        field(ctx, "output.run_dir", scale=3)
        field(ctx, "training.resume_from", scale=2)
    with gr.Row():
        widget(ctx, "train/preview_btn", gr.Button, is_input=False)
        widget(ctx, "train/start_btn", gr.Button, is_input=False, variant="primary")
        widget(ctx, "train/stop_btn", gr.Button, is_input=False, variant="stop")
        widget(ctx, "train/resume_btn", gr.Button, is_input=False)
        # Its own button, never a second Stop: a double-click must not lose the work since the last checkpoint.
        widget(ctx, "train/force_btn", gr.Button, is_input=False, variant="stop", size="sm")
    with gr.Group(visible=False, elem_classes=["ts-confirm"]) as confirm:
        widget(ctx, "train/confirm_text", gr.Markdown, is_input=False)
        with gr.Row():
            widget(ctx, "train/stop_and_start", gr.Button, is_input=False, variant="stop")
            widget(ctx, "train/queue_btn", gr.Button, is_input=False, variant="primary")
            widget(ctx, "train/cancel_btn", gr.Button, is_input=False)
    ctx.reg.add("train/confirm", confirm, is_input=False)
    widget(ctx, "train/status", gr.HTML, is_input=False, value="")
    command_box(ctx, "train/cmd")
    widget(ctx, "train/current", gr.Textbox, visible=False, value="")
    widget(ctx, "train/seen", gr.Textbox, visible=False, value="")
    widget(ctx, "train/progress", gr.HTML, is_input=False, value="")
    widget(ctx, "train/failure", gr.HTML, is_input=False, value="")
    with gr.Row(equal_height=True):
        widget(ctx, "train/log_scale", gr.Checkbox, value=False, scale=1)
        widget(ctx, "train/points", gr.HTML, is_input=False, value="", scale=3)
    with gr.Row():
        _plot(ctx, "train/plot_loss", "loss")
        _plot(ctx, "train/plot_lr", "lr")
    with gr.Row():
        _plot(ctx, "train/plot_grad", "grad")
        _plot(ctx, "train/plot_tps", "tps")
        _plot(ctx, "train/plot_mem", "mem")
    with gr.Row():
        with gr.Column(scale=3):
            widget(ctx, "train/log", gr.HTML, is_input=False, value="")
        with gr.Column(scale=2):
            widget(ctx, "train/samples", gr.HTML, is_input=False, value="", elem_classes=["ts-samples"])


WATCH = ["train/progress", "train/log", "train/failure", "train/samples", "train/points", "train/seen", "train/runs",
         *train_cb.PLOT_IDS.values()]


def wire(ctx: BuildContext, timer: gr.Timer) -> None:
    reg, s = ctx.reg, ctx.settings
    started = ["train/current", "train/seen", "train/confirm", "train/cmd", "train/runs"]
    reg.wire(reg["train/preview_btn"].click, partial(train_cb.preview_command, settings=s), ["train/cmd"],
             status="train/status")
    reg.wire(reg["train/start_btn"].click, partial(train_cb.start, settings=s), started, status="train/status")
    reg.wire(reg["train/queue_btn"].click, partial(train_cb.queue, settings=s), started, status="train/status")
    reg.wire(reg["train/stop_and_start"].click, partial(train_cb.stop_and_start, settings=s), started,
             status="train/status")
    reg.wire(reg["train/cancel_btn"].click, partial(train_cb.cancel_start, settings=s), ["train/confirm"],
             inputs=[])
    reg.wire(reg["train/stop_btn"].click, partial(train_cb.stop, settings=s), ["train/seen", "train/cmd"],
             inputs=["train/current", "top/lang"], status="train/status")
    reg.wire(reg["train/force_btn"].click, partial(train_cb.force_stop, settings=s), ["train/seen", "train/cmd"],
             inputs=["train/current", "top/lang"], status="train/status")
    reg.wire(reg["train/resume_btn"].click, partial(train_cb.resume, settings=s), started,
             inputs=["train/current", "top/lang"], status="train/status")
    reg.wire(reg["train/refresh_btn"].click, partial(train_cb.refresh_runs, settings=s), ["train/runs"],
             inputs=[], status="train/status")
    reg.wire(reg["train/open_btn"].click, partial(train_cb.open_run, settings=s),
             ["train/current", "train/seen", "train/cmd"],
             inputs=["train/runs", "top/lang"], status="train/status")
    poll_inputs = ["train/current", "train/seen", "train/log_scale", "top/lang"]
    # Polling only reads files: never make it wait behind other events (no queue badge flicker).
    reg.wire(timer.tick, partial(train_cb.poll, settings=s), WATCH, inputs=poll_inputs, status="train/status",
             show_progress="hidden", concurrency_limit=None, trigger_mode="always_last")
    reg.wire(reg["train/log_scale"].change, partial(train_cb.poll, settings=s), WATCH, inputs=poll_inputs,
             status="train/status", show_progress="hidden")
