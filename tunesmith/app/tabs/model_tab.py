"""Model tab: presets, local models, free path / hub id, GGUF import, facts, trust_remote_code."""

from __future__ import annotations

from functools import partial

import gradio as gr

from tunesmith.app.callbacks import config_cb, model_cb
from tunesmith.app.form import form_ids
from tunesmith.app.tabs.widgets import BuildContext, command_box, field, widget


def build(ctx: BuildContext) -> None:
    s = ctx.settings
    with gr.Row(equal_height=True):
        widget(ctx, "model/preset", gr.Dropdown, choices=model_cb.preset_choices(),
               value=ctx.values.get("model/preset"), scale=4)
        widget(ctx, "model/apply_preset", gr.Button, is_input=False, scale=1, min_width=120)
    with gr.Row(equal_height=True):
        field(ctx, "model.name_or_path", scale=3)
        widget(ctx, "model/local", gr.Dropdown, choices=model_cb.local_models(s), value=None, scale=2)
    with gr.Row():
        field(ctx, "model.attn_implementation")
        field(ctx, "model.gradient_checkpointing")
        field(ctx, "model.trust_remote_code")
    with gr.Row():
        field(ctx, "model.offload_checkpoints")
        field(ctx, "model.offload_embeddings")
    widget(ctx, "model/trust_warning", gr.Markdown, is_input=False, value="", visible=False,
           elem_classes=["ts-warning"])
    with gr.Row(equal_height=True):
        widget(ctx, "model/gguf_path", gr.Textbox, scale=4)
        widget(ctx, "model/gguf_btn", gr.Button, is_input=False, scale=1, min_width=120)
    widget(ctx, "model/facts_btn", gr.Button, is_input=False, variant="primary")
    widget(ctx, "model/status", gr.HTML, is_input=False, value="")
    widget(ctx, "model/facts", gr.HTML, is_input=False, value="")
    command_box(ctx, "model/cmd")


def wire(ctx: BuildContext) -> None:
    reg, s = ctx.reg, ctx.settings
    form = [i for i in form_ids() if i in reg]
    reg.wire(reg["model/apply_preset"].click, partial(config_cb.apply_preset, settings=s), [*form, "model/cmd"],
             status="model/status")
    reg.wire(reg["model/local"].change, partial(model_cb.pick_local, settings=s), ["model.name_or_path"],
             inputs=["model/local"], status="model/status")
    reg.wire(reg["model/local"].focus, partial(model_cb.refresh_local, settings=s), ["model/local"],
             inputs=[], status="model/status")
    reg.wire(reg["model.trust_remote_code"].change, model_cb.trust_warning, ["model/trust_warning"],
             inputs=["model.trust_remote_code", "top/lang"])
    reg.wire(reg["model/gguf_btn"].click, partial(model_cb.import_gguf, settings=s),
             ["model.name_or_path", "model/local", "model/cmd"], status="model/status")
    reg.wire(reg["model/facts_btn"].click, partial(model_cb.read_facts, settings=s), ["model/facts", "model/cmd"],
             status="model/status")
