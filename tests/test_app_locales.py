"""All UI text comes from one table per language, and switching language relabels every widget."""

from __future__ import annotations

import re

from tunesmith.app.callbacks.config_cb import change_lang
from tunesmith.app.locales import LOCALES, MESSAGES, label, props, text


def test_languages_have_the_same_keys_and_placeholders():
    assert set(LOCALES["en"]) == set(LOCALES["zh"])
    assert set(MESSAGES["en"]) == set(MESSAGES["zh"])
    for key in MESSAGES["en"]:
        fields = lambda s: sorted(re.findall(r"{(\w+)", s))  # noqa: E731
        assert fields(MESSAGES["en"][key]) == fields(MESSAGES["zh"][key]), key
    for key, entry in LOCALES["en"].items():
        assert set(entry) <= set(LOCALES["zh"][key]) | {"info"}, key


def test_english_info_falls_back_to_the_config_help():
    assert props("training.learning_rate", "en")["info"] == "Peak learning rate."
    assert props("training.learning_rate", "zh") == {"label": "学习率", "info": "峰值学习率。"}
    assert label("tab/train", "zh") == "4 · 训练"


def test_messages_format_in_both_languages():
    assert text("run_started", "en", run="r1") == "Started run r1."
    assert text("run_started", "zh", run="r1") == "已开始运行 r1。"
    assert text("preview_ok", "en", kept=9, rows=10, supervised=0.5) == \
        "9 of 10 rows kept; 50% of tokens are trained on."
    assert text("unknown_key", "xx") == "unknown_key"


def test_change_lang_relabels_inputs_and_buttons_but_keeps_values():
    ids = ["training.learning_rate", "train/start_btn", "tab/data", "train/current", "method/ds_offload"]
    zh = change_lang({"top/lang": "zh"}, ids)
    assert zh["training.learning_rate"] == {"label": "学习率", "info": "峰值学习率。"}
    assert "value" not in zh["training.learning_rate"]
    assert zh["train/start_btn"] == {"value": "开始"}
    assert zh["tab/data"] == {"label": "1 · 数据"}
    assert "train/current" not in zh
    en = change_lang({"top/lang": "en"}, ids)
    assert en["train/start_btn"] == {"value": "Start"} and en["method/ds_offload"]["label"] == "Offload to CPU"
