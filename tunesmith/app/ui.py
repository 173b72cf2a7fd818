"""Build the six-tab studio: header, Data, Model, Method, Train, Export, Chat.

Every widget is registered in one :class:`~tunesmith.app.registry.Registry`; the tabs are built first and
wired afterwards, so any handler can read any field of any tab.
"""

from __future__ import annotations

from functools import partial

import gradio as gr

from tunesmith.app.callbacks import data_cb, lang_cb, train_cb
from tunesmith.app.callbacks.config_cb import default_config_path
from tunesmith.app.css import SET_LANG_JS
from tunesmith.app.form import form_ids, gui_default_config, values_from_config
from tunesmith.app.registry import Registry
from tunesmith.app.settings import AppSettings
from tunesmith.app.tabs import chat_tab, data_tab, export_tab, method_tab, model_tab, top, train_tab
from tunesmith.app.tabs.widgets import BuildContext, container

TABS = (("tab/data", data_tab), ("tab/model", model_tab), ("tab/method", method_tab),
        ("tab/train", train_tab), ("tab/export", export_tab), ("tab/chat", chat_tab))


def start_values(settings: AppSettings) -> dict:
    """What the form shows on first open: the GUI default config plus the header's fields."""
    from tunesmith.core.presets import DEFAULT_PRESET

    values = values_from_config(gui_default_config())
    # The form starts as the default preset on a demo set: show both as chosen, not blank lists.
    return {**values, "top/lang": settings.lang, "top/config_path": default_config_path(settings),
            "model/preset": DEFAULT_PRESET, "data/demo": data_cb.demo_for_path(values.get("data.path"))}


def build_app(settings: AppSettings) -> tuple[gr.Blocks, Registry]:
    reg = Registry()
    ctx = BuildContext(reg, settings.lang, start_values(settings), settings)
    with gr.Blocks(title="Tunesmith", analytics_enabled=False) as demo:
        top.build(ctx)
        tabs = {}
        with gr.Tabs() as tab_set:
            for tab_id, module in TABS:
                with container(ctx, tab_id, gr.Tab, id=tab_id) as tab:
                    module.build(ctx)
                tabs[tab_id] = tab
        reg.add("top/tabs", tab_set, is_input=False)
        timer = gr.Timer(train_tab.POLL_SECONDS)
        top.wire(ctx)
        reg.wire(reg["top/banner_btn"].click, train_cb.go_to_train, ["top/tabs"], inputs=[])
        data_tab.wire(ctx)
        model_tab.wire(ctx)
        method_tab.wire(ctx, tabs["tab/method"])
        train_tab.wire(ctx, timer)
        export_tab.wire(ctx, tabs["tab/export"])
        chat_tab.wire(ctx, tabs["tab/chat"])
        # On every page load (a reload or a new browser): re-attach to a live run, fill lists.
        form = [i for i in form_ids() if i in reg]
        reg.wire(demo.load, partial(train_cb.on_load, settings=settings, only=form),
                 ["train/current", "train/runs", "train/seen", "train/cmd", *train_cb.STOP_IDS, *form],
                 inputs=["train/current", "top/lang"],
                 status="train/status")
        reg.wire(demo.load, partial(data_cb.inspect_data, settings=settings), data_cb.INSPECT_OUT,
                 inputs=["data.path", "data.split", "data.map_fn", "top/lang"], status="data/status")
        # One handler for the whole page (labels, texts that are values, the estimate): see lang_cb.
        relabel = [i for i in reg.ids() if i != "top/lang"]
        reg.wire(reg["top/lang"].change, partial(lang_cb.switch_language, registered_ids=relabel, settings=settings),
                 reg.ids(), inputs=[*reg.input_ids(), data_cb.STATS], status="top/status")
        reg["top/lang"].change(None, inputs=[reg["top/lang"]], outputs=None, js=SET_LANG_JS)  # gradio's own texts
    return demo, reg
