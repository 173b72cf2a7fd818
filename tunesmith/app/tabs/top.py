"""Header: title, language switch, Save / Load config (the CLI's YAML)."""

from __future__ import annotations

from functools import partial

import gradio as gr

from tunesmith.app.callbacks import config_cb
from tunesmith.app.locales import LANG_NAMES
from tunesmith.app.tabs.widgets import BuildContext, widget


def build(ctx: BuildContext) -> None:
    with gr.Row(equal_height=True, elem_classes=["ts-header"]):
        widget(ctx, "top/title", gr.Markdown, is_input=False, scale=3)
        widget(ctx, "top/lang", gr.Dropdown, choices=[(v, k) for k, v in LANG_NAMES.items()], value=ctx.lang,
               scale=1, min_width=140)
    with gr.Row(equal_height=False):
        widget(ctx, "top/config_path", gr.Textbox, scale=4)
        with gr.Column(scale=3, min_width=300):
            with gr.Row():
                widget(ctx, "top/save_btn", gr.Button, is_input=False, size="md", min_width=90)
                widget(ctx, "top/load_btn", gr.Button, is_input=False, size="md", min_width=90)
                widget(ctx, "top/upload_cfg", gr.UploadButton, is_input=True, file_types=[".yaml", ".yml"],
                       type="filepath", size="md", min_width=90)
                widget(ctx, "top/download", gr.DownloadButton, is_input=False, size="md", min_width=90,
                       visible=False)
    widget(ctx, "top/status", gr.HTML, is_input=False, value="")
    # Above every tab while a run is active: a reloaded page opens on the Data tab, far from the run.
    with gr.Row(visible=False, equal_height=True, elem_classes=["ts-banner"], elem_id="ts-top-banner_row") as banner:
        widget(ctx, "top/banner", gr.HTML, is_input=False, value="", scale=4)
        widget(ctx, "top/banner_btn", gr.Button, is_input=False, size="sm", scale=1, min_width=120)
    ctx.reg.add("top/banner_row", banner, is_input=False)


def wire(ctx: BuildContext) -> None:
    reg, s = ctx.reg, ctx.settings
    from tunesmith.app.form import form_ids

    form = [i for i in form_ids() if i in reg]
    reg.wire(reg["top/save_btn"].click, partial(config_cb.save_config, settings=s),
             ["top/config_path", "top/download"], status="top/status")
    reg.wire(reg["top/load_btn"].click, partial(config_cb.load_config, settings=s), form, status="top/status")
    reg.wire(reg["top/upload_cfg"].upload, partial(config_cb.load_uploaded_config, settings=s),
             [*form, "top/upload_cfg"], status="top/status")
