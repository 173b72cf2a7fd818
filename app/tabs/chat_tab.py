"""Chat tab (placeholder until core.chat lands)."""

from __future__ import annotations

import gradio as gr

from app.tabs.widgets import BuildContext, widget


def build(ctx: BuildContext) -> None:
    widget(ctx, "chat/status", gr.HTML, is_input=False, value="")


def wire(ctx: BuildContext, tab) -> None:
    pass
