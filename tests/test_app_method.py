"""Issue 12 items 3 and 4: "Fit to my GPU" plans for the GPUs that are here, and every value the app
changes for the user is said where the choice was made."""

from __future__ import annotations

import pytest

from tunesmith.app.callbacks import method_cb
from tunesmith.app.form import gui_default_config, values_from_config


def _values(cfg=None, **changes):
    v = {**values_from_config(cfg or gui_default_config()), "top/lang": "en", "method/gpu_gb": "8"}
    v.update(changes)
    return v


def test_choosing_qlora_lists_what_it_changed_there():
    values = _values(**{"method.finetuning": "qlora", "training.learning_rate": 0.001,
                        "model.gradient_checkpointing": False})
    out = method_cb.on_method_change(values, "method.finetuning")
    assert out["training.learning_rate"] == 2e-4 and out["model.gradient_checkpointing"] is True
    html = out["method/changes"]
    assert 'data-changes="2"' in html
    assert "Learning rate 0.001 → 0.0002 (XTuner&#x27;s default)" in html
    assert "Gradient checkpointing off → on" in html and "on the 2 · Model tab" in html
    zh = method_cb.on_method_change({**values, "top/lang": "zh"}, "method.finetuning")["method/changes"]
    assert "学习率 0.001 → 0.0002" in zh and "关 → 开" in zh


def test_a_choice_that_changes_nothing_says_nothing():
    values = _values(**{"method.finetuning": "lora", "training.learning_rate": 2e-4})
    assert method_cb.on_method_change(values, "method.finetuning")["method/changes"] == ""


def test_fit_plans_for_one_gpu_and_drops_zero3(monkeypatch):
    from tunesmith.core.presets import load_config

    monkeypatch.setattr(method_cb, "detected_gpu_count", lambda: 0)  # a CPU machine: plan for one GPU
    cfg = load_config("llama2_7b_full_alpaca_e3")
    assert cfg.world_size == 8 and cfg.distributed.deepspeed.startswith("zero3")
    out = method_cb.fit(_values(cfg))
    status = out["method/status"]
    assert 'data-gpus="1"' in status and 'data-zero=""' in status
    assert out["distributed.nproc_per_node"] == 1
    head = status.split("<b>")[1].split("</b>")[0]
    assert head.startswith("Changed to fit 1 GPU × 8 GB, no DeepSpeed: ") and "per GPU" in head
    assert "GPUs 8 → 1" in status and "DeepSpeed ZeRO-3" in status


def test_fit_keeps_zero_on_several_detected_gpus(monkeypatch):
    from tunesmith.core.presets import load_config

    monkeypatch.setattr(method_cb, "detected_gpu_count", lambda: 8)
    out = method_cb.fit(_values(load_config("llama2_7b_full_alpaca_e3"), **{"method/gpu_gb": "80"}))
    assert 'data-gpus="8"' in out["method/status"] and "8 GPU × 80 GB, ZeRO-3" in out["method/status"]


@pytest.mark.parametrize("lang,word", [("en", "1 GPU × 8 GB"), ("zh", "1 块 GPU × 8 GB")])
def test_fit_headline_in_the_page_language(monkeypatch, lang, word):
    monkeypatch.setattr(method_cb, "detected_gpu_count", lambda: 1)
    out = method_cb.fit(_values(**{"top/lang": lang}))
    assert word in out["method/status"]


def test_command_line_is_built_on_the_applied_preset():
    # it was built on the default smollm2 preset, so a 7B preset became a long --set list
    from tunesmith.app import commands
    from tunesmith.app.form import config_from_values
    from tunesmith.core.presets import load_config

    name = "llama2_7b_full_alpaca_e3"
    values = {**values_from_config(load_config(name)), "model/preset": name}
    cmd = commands.estimate_command(config_from_values(values), 8, method_cb.base_preset(values))
    assert cmd == f"python -m tunesmith estimate {name} --gpu-gb 8"
    assert method_cb.base_preset({"model/preset": "../secrets"}) is None
    assert method_cb.base_preset({"model/preset": ""}) is None


def test_first_load_shows_the_default_preset_and_demo_set_as_chosen(tmp_path):
    from tunesmith.app.callbacks.data_cb import demo_choices
    from tunesmith.app.settings import AppSettings
    from tunesmith.app.ui import start_values
    from tunesmith.core.presets import DEFAULT_PRESET

    values = start_values(AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path)}))
    assert values["model/preset"] == DEFAULT_PRESET
    assert values["data/demo"] == dict(demo_choices())["identity.json"]


def test_estimate_updates_parse_the_preset_once(monkeypatch):
    # each update parsed the preset YAML again: two thirds of the callback's time
    import tunesmith.core.presets
    from tunesmith.app import commands

    cfg = gui_default_config()
    calls = []
    real = tunesmith.core.presets.load_config
    monkeypatch.setattr(tunesmith.core.presets, "load_config", lambda name: calls.append(name) or real(name))
    commands._load_preset.cache_clear()
    first = commands.estimate_command(cfg, 8)
    cfg.training.batch_size = 7
    second = commands.estimate_command(cfg, 8)
    assert len(calls) == 1
    assert "--set training.batch_size=7" in second and "batch_size" not in first
