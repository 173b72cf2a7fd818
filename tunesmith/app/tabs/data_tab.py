"""Data tab: demo sets, upload, path / hub id, row format, template, preview and statistics."""

from __future__ import annotations

from functools import partial

import gradio as gr

from tunesmith.app.callbacks import data_cb
from tunesmith.app.form import COLUMN_IDS
from tunesmith.app.locales import text
from tunesmith.app.tabs.widgets import BuildContext, command_box, container, field, widget


def _map_fn_choices() -> list[str]:
    from tunesmith.core.data.map_fns import MAP_FNS

    return ["auto", "columns", *MAP_FNS]


def _template_choices() -> list[str]:
    from tunesmith.core.data.templates import CHAT_TEMPLATE, PROMPT_TEMPLATES

    return ["auto", CHAT_TEMPLATE, *PROMPT_TEMPLATES]


def build(ctx: BuildContext) -> None:
    demos = data_cb.demo_choices()
    demo_value = ctx.values.get("data/demo")
    with gr.Row():
        widget(ctx, "data/demo", gr.Dropdown, choices=demos, value=demo_value, scale=2)
        widget(ctx, "data/upload", gr.File, type="filepath", height=120, scale=2,
               file_types=[".json", ".jsonl", ".csv", ".parquet", ".txt", ".tsv"])
    with container(ctx, "data/identity", gr.Accordion, open=False):
        with gr.Row(equal_height=True):
            widget(ctx, "data/id_name", gr.Textbox, value="", scale=2)
            widget(ctx, "data/id_author", gr.Textbox, value="", scale=2)
            widget(ctx, "data/id_btn", gr.Button, is_input=False, scale=1)
    with gr.Row():
        field(ctx, "data.path", scale=4)
        field(ctx, "data.split", scale=1)
    field(ctx, "data.sources", lines=1, max_lines=4)  # more files in the same run, each with its own map_fn
    widget(ctx, "data/suggest", gr.Markdown, is_input=False, value="")
    with gr.Row():
        field(ctx, "data.map_fn", choices=_map_fn_choices(), allow_custom_value=True)
        field(ctx, "data.template", choices=_template_choices())
        field(ctx, "data.system")
    widget(ctx, "data/template_hint", gr.Markdown, is_input=False, value="")
    with container(ctx, "data/columns", gr.Accordion, open=False):
        with gr.Row():
            for elem_id in COLUMN_IDS.values():
                widget(ctx, elem_id, gr.Dropdown, choices=[""], allow_custom_value=True)
    with container(ctx, "data/advanced", gr.Accordion, open=False):
        with gr.Row():
            field(ctx, "data.max_length")
            field(ctx, "data.max_samples")
            field(ctx, "data.eval_size")
            field(ctx, "data.num_proc")
        with gr.Row():
            field(ctx, "data.pack")
            field(ctx, "data.shuffle_before_pack")
    widget(ctx, "data/preview_btn", gr.Button, is_input=False, variant="primary")
    widget(ctx, "data/status", gr.HTML, is_input=False, value="")
    with gr.Row():
        with gr.Column(scale=3):
            widget(ctx, "data/preview", gr.HTML, is_input=False, value="", elem_classes=["ts-preview"])
        with gr.Column(scale=2):
            widget(ctx, "data/stats", gr.HTML, is_input=False, value="")
            ctx.reg.add(data_cb.STATS, gr.State(None))
            widget(ctx, "data/hist", gr.BarPlot, is_input=False, x="tokens", y="rows", sort=None, height=220,
                   x_label_angle=-45, x_title=text("hist_x", ctx.lang), y_title=text("hist_y", ctx.lang))
    command_box(ctx, "data/cmd")


def wire(ctx: BuildContext) -> None:
    reg, s = ctx.reg, ctx.settings
    inspect_out = data_cb.INSPECT_OUT
    reg.wire(reg["data/demo"].change, partial(data_cb.pick_demo, settings=s), ["data.path"], status="data/status")
    reg.wire(reg["data/id_btn"].click, partial(data_cb.make_identity, settings=s), ["data.path", "data.map_fn"],
             inputs=["data/id_name", "data/id_author", "top/lang"], status="data/status")
    reg.wire(reg["data/upload"].upload, partial(data_cb.upload, settings=s), ["data.path", "data/upload"],
             status="data/status")
    reg.wire(reg["data.path"].change, partial(data_cb.inspect_data, settings=s), inspect_out,
             inputs=["data.path", "data.split", "data.map_fn", "top/lang"], status="data/status",
             trigger_mode="always_last")
    for source in ("data.template", "model.name_or_path"):
        reg.wire(reg[source].change, data_cb.template_hint, ["data/template_hint"],
                 inputs=["data.template", "model.name_or_path"])
    reg.wire(reg["data/preview_btn"].click, partial(data_cb.run_preview, settings=s),
             ["data/preview", "data/stats", "data/hist", "data/cmd", data_cb.STATS], status="data/status")
