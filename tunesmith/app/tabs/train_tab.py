"""Train tab: command preview, Start / Stop / Resume, progress with ETA, live plots, log tail,
eval-chat samples, past runs, and re-attaching after a reload (timer-polled run folder)."""

from __future__ import annotations

from functools import partial

import gradio as gr

from tunesmith.app.callbacks import eval_cb, train_cb
from tunesmith.app.plots import PLOTS, y_title
from tunesmith.app.tabs.widgets import BuildContext, command_box, container, field, widget

POLL_SECONDS = 2.0


def _plot(ctx: BuildContext, elem_id: str, plot: str) -> None:
    from tunesmith.app.locales import text
    from tunesmith.app.plots import COLORS, Y_FORMATS, series_name

    series = [name for _key, name in PLOTS[plot]]
    widget(ctx, elem_id, gr.LinePlot, is_input=False, x="step", y="value", color="series", height=220,
           y_title=y_title(plot, False, ctx.lang), x_title=text("axis_step", ctx.lang), color_title="",
           x_axis_format="d", y_axis_format=Y_FORMATS[plot],
           color_map={series_name(n, ctx.lang): COLORS[n] for n in series}, value=None)


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
        # Greyed until a run is watched: poll() (also after a reload's re-attach) makes both live.
        widget(ctx, "train/stop_btn", gr.Button, is_input=False, variant="secondary", interactive=False)
        widget(ctx, "train/resume_btn", gr.Button, is_input=False)
        # Its own button, never a second Stop: a double-click must not lose the work since the last checkpoint.
        widget(ctx, "train/force_btn", gr.Button, is_input=False, variant="secondary", size="sm",
               interactive=False)
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
    widget(ctx, "train/planned", gr.Textbox, visible=False, value="")
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
    build_evaluate(ctx)
    build_compare(ctx)


def build_evaluate(ctx: BuildContext) -> None:
    """Evaluate a finished run against its base (app/callbacks/eval_cb.py)."""
    with container(ctx, "train/eval", gr.Accordion, open=False):
        with gr.Row(equal_height=True):
            widget(ctx, "eval/run", gr.Dropdown, choices=[], value=None, scale=3)
            widget(ctx, "eval/data", gr.Textbox, value="", scale=3)
            widget(ctx, "eval/name", gr.Textbox, value="", scale=1)
        with gr.Row(equal_height=True):
            widget(ctx, "eval/limit", gr.Number, value=0, precision=0)
            widget(ctx, "eval/max_new_tokens", gr.Number, value=128, precision=0)
            widget(ctx, "eval/start_btn", gr.Button, is_input=False, variant="primary")
            widget(ctx, "eval/stop_btn", gr.Button, is_input=False, variant="stop")
            widget(ctx, "eval/refresh_btn", gr.Button, is_input=False, size="sm")
        widget(ctx, "eval/status", gr.HTML, is_input=False, value="")
        command_box(ctx, "eval/cmd")
        widget(ctx, "eval/current", gr.Textbox, visible=False, value="")
        widget(ctx, "eval/seen", gr.Textbox, visible=False, value="")
        widget(ctx, "eval/progress", gr.HTML, is_input=False, value="")
        widget(ctx, "eval/failure", gr.HTML, is_input=False, value="")
        widget(ctx, "eval/summary", gr.HTML, is_input=False, value="")
        with gr.Row():
            widget(ctx, "eval/best", gr.Dataframe, is_input=False, value=None, wrap=True)
            widget(ctx, "eval/worst", gr.Dataframe, is_input=False, value=None, wrap=True)
        widget(ctx, "eval/examples", gr.Dataframe, is_input=False, value=None, wrap=True, max_height=400)


def build_compare(ctx: BuildContext) -> None:
    """Two or more runs side by side: overlaid curves, config diff, evaluations."""
    with container(ctx, "train/compare", gr.Accordion, open=False):
        with gr.Row(equal_height=True):
            widget(ctx, "compare/runs", gr.Dropdown, choices=[], value=[], multiselect=True, scale=4)
            widget(ctx, "compare/btn", gr.Button, is_input=False, variant="primary", scale=1)
        widget(ctx, "compare/status", gr.HTML, is_input=False, value="")
        widget(ctx, "compare/plot", gr.LinePlot, is_input=False, x="step", y="value", color="series", height=260,
               x_title="step", y_title="loss", value=None)
        widget(ctx, "compare/diff", gr.Dataframe, is_input=False, value=None, wrap=True)
        widget(ctx, "compare/evals", gr.Dataframe, is_input=False, value=None, wrap=True)


WATCH = ["train/progress", "train/log", "train/failure", "train/samples", "train/points", "train/seen", "train/runs",
         *train_cb.PLOT_IDS.values(), *train_cb.BANNER_IDS, *train_cb.STOP_IDS]


def wire(ctx: BuildContext, timer: gr.Timer) -> None:
    reg, s = ctx.reg, ctx.settings
    started = ["train/current", "train/seen", "train/planned", "train/confirm", "train/cmd", "train/runs"]
    reg.wire(reg["train/preview_btn"].click, partial(train_cb.preview_command, settings=s),
             ["train/cmd", "train/planned"],
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
    wire_evaluate(ctx, timer)


def wire_evaluate(ctx: BuildContext, timer: gr.Timer) -> None:
    reg, s = ctx.reg, ctx.settings
    eval_inputs = [i for i in reg.input_ids() if i.startswith("eval/")] + ["top/lang"]
    pickers = ["eval/run", "compare/runs"]
    reg.wire(reg["eval/refresh_btn"].click, partial(eval_cb.refresh, settings=s), pickers, inputs=[],
             status="eval/status")
    reg.wire(reg["train/eval"].expand, partial(eval_cb.refresh, settings=s), pickers, inputs=[], status="eval/status")
    reg.wire(reg["train/compare"].expand, partial(eval_cb.refresh, settings=s), pickers, inputs=[],
             status="compare/status")
    started = ["eval/current", "eval/seen", "eval/cmd", *eval_cb.EVAL_OUTPUTS]
    reg.wire(reg["eval/start_btn"].click, partial(eval_cb.start, settings=s), started, inputs=eval_inputs,
             status="eval/status")
    reg.wire(reg["eval/stop_btn"].click, partial(eval_cb.stop, settings=s), [], inputs=eval_inputs,
             status="eval/status")
    reg.wire(timer.tick, partial(eval_cb.poll, settings=s), eval_cb.EVAL_OUTPUTS,
             inputs=["eval/current", "eval/seen", "top/lang"], status="eval/status", show_progress="hidden",
             concurrency_limit=None, trigger_mode="always_last")
    reg.wire(reg["compare/btn"].click, partial(eval_cb.compare, settings=s),
             ["compare/plot", "compare/diff", "compare/evals"], inputs=["compare/runs", "top/lang"],
             status="compare/status")
