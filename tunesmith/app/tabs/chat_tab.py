"""Chat tab: what to talk to (base / run adapter / merged folder), system text, template,
sampling, streaming chat with Stop and Clear, and side-by-side A/B of base vs tuned."""

from __future__ import annotations

from functools import partial

import gradio as gr

from tunesmith.app.callbacks import chat_cb, serve_cb
from tunesmith.app.tabs.data_tab import _template_choices
from tunesmith.app.tabs.widgets import BuildContext, command_box, container, widget


def build(ctx: BuildContext) -> None:
    with gr.Row():
        with gr.Column(scale=3):
            widget(ctx, "chat/source", gr.Radio, value="base")
            with gr.Row(equal_height=True):
                widget(ctx, "chat/base", gr.Textbox, value=ctx.values.get("model.name_or_path", ""), scale=4)
                widget(ctx, "chat/run", gr.Dropdown, choices=[], value=None, scale=3, visible=False)
                widget(ctx, "chat/checkpoint", gr.Dropdown, choices=[], value=None, scale=1, visible=False)
                widget(ctx, "chat/merged", gr.Textbox, scale=4, visible=False)
                widget(ctx, "chat/load_btn", gr.Button, is_input=False, variant="primary", scale=1, min_width=110)
            widget(ctx, "chat/status", gr.HTML, is_input=False, value="")
            with gr.Row():
                widget(ctx, "chat/bot", gr.Chatbot, height=420, buttons=["copy"])
                widget(ctx, "chat/bot_b", gr.Chatbot, height=420, visible=False, buttons=["copy"])
            widget(ctx, "chat/input", gr.Textbox, lines=1, max_lines=6)
            with gr.Row():
                widget(ctx, "chat/send_btn", gr.Button, is_input=False, variant="primary")
                widget(ctx, "chat/stop_btn", gr.Button, is_input=False, variant="stop")
                widget(ctx, "chat/clear_btn", gr.Button, is_input=False)
        with gr.Column(scale=1, elem_classes=["ts-side"]):
            widget(ctx, "chat/ab", gr.Checkbox, value=False)
            widget(ctx, "chat/system", gr.Textbox, lines=3, value="")
            widget(ctx, "chat/template", gr.Dropdown, choices=_template_choices(), value="auto")
            with container(ctx, "chat/sampling", gr.Accordion, open=True):
                widget(ctx, "chat/max_new_tokens", gr.Number, value=256, precision=0)
                widget(ctx, "chat/temperature", gr.Number, value=0.1)
                widget(ctx, "chat/top_p", gr.Number, value=0.75)
                widget(ctx, "chat/top_k", gr.Number, value=40, precision=0)
                widget(ctx, "chat/repetition_penalty", gr.Number, value=1.0)
            with container(ctx, "chat/serve", gr.Accordion, open=False):  # serve_cb: the API subprocess
                widget(ctx, "chat/serve_port", gr.Number, value=serve_cb.DEFAULT_PORT, precision=0)
                with gr.Row():
                    widget(ctx, "chat/serve_btn", gr.Button, is_input=False, variant="secondary")
                    widget(ctx, "chat/serve_stop_btn", gr.Button, is_input=False, variant="stop")
                widget(ctx, "chat/serve_status", gr.HTML, is_input=False, value="")
                widget(ctx, "chat/serve_info", gr.Markdown, is_input=False, value="")
    command_box(ctx, "chat/cmd")
    ctx.reg.add(chat_cb.STATE, gr.State(None))


def wire(ctx: BuildContext, tab) -> None:
    reg, s = ctx.reg, ctx.settings
    listing = ["chat/run", "chat/checkpoint", "chat/base", "chat/source"]
    reg.wire(tab.select, partial(chat_cb.refresh, settings=s), listing, status="chat/status")
    reg.wire(reg["chat/run"].input, partial(chat_cb.pick_run, settings=s), ["chat/checkpoint"],
             inputs=["chat/run"], status="chat/status")
    # Load and Send read only the Chat tab (plus the language and the Model tab's trust box): sending
    # every widget of the studio with each message made busy chat sessions slow for everyone.
    chat_inputs = [i for i in reg.input_ids() if i.startswith("chat/")] + ["top/lang", "model.trust_remote_code"]
    reg.wire(reg["chat/load_btn"].click, partial(chat_cb.load, settings=s),
             [chat_cb.STATE, "chat/bot", "chat/bot_b", "chat/cmd", "chat/ab"], inputs=chat_inputs,
             status="chat/status")
    for event in (reg["chat/send_btn"].click, reg["chat/input"].submit):
        reg.wire(event, partial(chat_cb.send, settings=s),
                 ["chat/input", "chat/bot", "chat/bot_b", "chat/cmd", chat_cb.STATE, "chat/ab"],
                 inputs=chat_inputs, status="chat/status")
    reg.wire(reg["chat/stop_btn"].click, chat_cb.stop, [], inputs=[chat_cb.STATE], status="chat/status",
             queue=False)
    reg.wire(reg["chat/clear_btn"].click, chat_cb.clear, ["chat/bot", "chat/bot_b"], inputs=[chat_cb.STATE],
             status="chat/status")
    for bot in ("chat/bot", "chat/bot_b"):  # the chat box's own trash button forgets the conversation too
        reg.wire(reg[bot].clear, chat_cb.clear, ["chat/bot", "chat/bot_b"], inputs=[chat_cb.STATE],
                 status="chat/status")
    reg.wire(reg["chat/ab"].change, chat_cb.toggle_ab, ["chat/bot_b", "chat/bot"], inputs=["chat/ab"])
    reg.wire(reg["chat/serve_btn"].click, partial(serve_cb.start, settings=s), ["chat/serve_info"],
             inputs=chat_inputs, status="chat/serve_status")
    reg.wire(reg["chat/serve_stop_btn"].click, serve_cb.stop, ["chat/serve_info"], inputs=["top/lang"],
             status="chat/serve_status")
    reg.wire(reg["chat/source"].change, chat_cb.source_fields, ["chat/base", "chat/run", "chat/checkpoint",
                                                               "chat/merged"], inputs=["chat/source"])
