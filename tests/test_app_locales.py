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


def test_one_language_switch_answers_for_the_whole_page(tmp_path):
    """lang_cb.switch_language: labels, the columns line, the statistics table, the estimate and the box's own
    label in one answer; a part that fails shows its error while the rest still changes."""
    import json

    from tunesmith.app.callbacks import data_cb, lang_cb
    from tunesmith.app.form import gui_default_config, values_from_config
    from tunesmith.app.registry import Update
    from tunesmith.app.settings import AppSettings

    settings = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")})
    settings.ensure_dirs()
    path = settings.uploads_dir / "alp.json"
    path.write_text(json.dumps([{"instruction": "Say hi", "input": "", "output": "hi"}]))
    ids = ["training.learning_rate", "train/start_btn", "data/suggest", "method/memory"]
    values = {**values_from_config(gui_default_config()), "data.path": str(path), "data.map_fn": "alpaca",
              "top/lang": "zh", data_cb.STATS: {"rows": 3}, "method/gpu_gb": "8"}
    out = lang_cb.switch_language(values, ids, settings)
    assert out["training.learning_rate"] == {"label": "学习率", "info": "峰值学习率。"}
    assert out["train/start_btn"] == {"value": "开始"} and out["top/lang"] == Update(label=label("top/lang", "zh"))
    assert "alpaca" in out["data/suggest"] and out["data/suggest"] == data_cb.relabel_suggest(values, settings)[
        "data/suggest"]
    assert "<td>行数</td><td>3</td>" in out["data/stats"]
    assert 'class="ts-memory"' in str(out["method/memory"]) and "method/status" not in out
    broken = lang_cb.switch_language({**values, "training.batch_size": "many"}, ids, settings)
    assert "method/status" in broken and broken["train/start_btn"] == {"value": "开始"}
