"""Export tab: pick a run and checkpoint, merge the adapter into the base, convert to a clean HF
folder or write a GGUF file (+ Ollama Modelfile), with dtype, shard size, GGUF type, output folder and progress."""

from __future__ import annotations

from functools import partial

import gradio as gr

from tunesmith.app.callbacks import export_cb
from tunesmith.app.tabs.widgets import BuildContext, command_box, widget


def build(ctx: BuildContext) -> None:
    with gr.Row(equal_height=True):
        widget(ctx, "export/run", gr.Dropdown, choices=[], value=None, scale=4)
        widget(ctx, "export/checkpoint", gr.Dropdown, choices=[], value=None, scale=2)
        widget(ctx, "export/refresh_btn", gr.Button, is_input=False, scale=1, min_width=110)
    with gr.Row():
        widget(ctx, "export/mode", gr.Radio, value="merge")
        widget(ctx, "export/base", gr.Textbox, value=ctx.values.get("model.name_or_path", ""))
    with gr.Row():
        widget(ctx, "export/out_dir", gr.Textbox, scale=3)
        widget(ctx, "export/dtype", gr.Dropdown, choices=list(export_cb.DTYPES), value="fp16", scale=1)
        widget(ctx, "export/shard", gr.Textbox, value="2GB", scale=1)
        widget(ctx, "export/quant", gr.Dropdown, choices=list(export_cb.GGUF_TYPES), value="q8_0", scale=1)
    widget(ctx, "export/btn", gr.Button, is_input=False, variant="primary")
    widget(ctx, "export/progress", gr.HTML, is_input=False, value="")
    widget(ctx, "export/status", gr.HTML, is_input=False, value="")
    widget(ctx, "export/last", gr.Textbox, is_input=False, interactive=False, value="")
    command_box(ctx, "export/cmd")


def wire(ctx: BuildContext, tab) -> None:
    reg, s = ctx.reg, ctx.settings
    picked = ["export/checkpoint", "export/base"]
    reg.wire(reg["export/refresh_btn"].click, partial(export_cb.refresh, settings=s), ["export/run", *picked],
             status="export/status")
    reg.wire(tab.select, partial(export_cb.refresh, settings=s), ["export/run", *picked], status="export/status")
    reg.wire(reg["export/run"].input, partial(export_cb.pick_run, settings=s), picked, status="export/status")
    reg.wire(reg["export/btn"].click, partial(export_cb.export, settings=s),
             ["export/progress", "export/cmd", "export/out_dir", "export/last", "chat/merged"],
             status="export/status")
