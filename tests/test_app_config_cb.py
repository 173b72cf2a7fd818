"""Save / Load config write and read the CLI's YAML; validation lists every problem by field."""

from __future__ import annotations

import pytest

from tunesmith.app.callbacks import config_cb, train_cb
from tunesmith.app.form import gui_default_config, values_from_config
from tunesmith.app.settings import AppSettings
from tunesmith.core.config import RunConfig
from tunesmith.core.errors import UserError


@pytest.fixture
def settings(tmp_path):
    s = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")})
    s.ensure_dirs()
    return s


def _values(settings, **changes):
    values = {**values_from_config(gui_default_config()), "top/lang": "en"}
    values.update(changes)
    return values


def test_save_writes_the_cli_yaml_and_load_reads_it_back(settings):
    path = settings.home / "configs" / "mine.yaml"
    values = _values(settings, **{"top/config_path": str(path), "training.learning_rate": 5e-5, "lora.r": 4.0})
    out = config_cb.save_config(values, settings)
    assert "Saved the config" in out["top/status"] and out["top/download"]["value"] == str(path)
    cfg = RunConfig.load(path)
    assert cfg.training.learning_rate == 5e-5 and cfg.lora.r == 4
    assert cfg == RunConfig.from_dict(gui_default_config().to_dict()).with_overrides(
        ["training.learning_rate=5e-5", "lora.r=4"])

    loaded = config_cb.load_config({"top/config_path": str(path), "top/lang": "zh"}, settings)
    assert loaded["training.learning_rate"] == 5e-5 and loaded["lora.r"] == 4
    assert loaded["eval.prompts"] == "\n".join(gui_default_config().eval.prompts)
    assert "已加载" in loaded["top/status"]


def test_save_never_clobbers_a_file_that_is_not_a_run_config(settings):
    data = settings.home / "data.yaml"
    data.write_text("- precious: data\n")
    with pytest.raises(UserError, match="left untouched"):
        config_cb.save_config(_values(settings, **{"top/config_path": str(data)}), settings)
    assert data.read_text() == "- precious: data\n"
    with pytest.raises(UserError, match="does not end in .yaml"):
        config_cb.save_config(_values(settings, **{"top/config_path": str(settings.home / "x.json")}), settings)
    with pytest.raises(UserError, match="outside the folders"):
        config_cb.save_config(_values(settings, **{"top/config_path": "/etc/tunesmith.yaml"}), settings)


def test_load_reports_bad_yaml_with_its_line(settings):
    bad = settings.home / "bad.yaml"
    bad.write_text("training:\n  batch_size: [\n")
    with pytest.raises(UserError, match="not valid YAML"):
        config_cb.load_config({"top/config_path": str(bad)}, settings)
    wrong = settings.home / "wrong.yaml"
    wrong.write_text("training:\n  batch_sise: 4\n")
    with pytest.raises(UserError, match="Did you mean: batch_size"):
        config_cb.load_config({"top/config_path": str(wrong)}, settings)


def test_uploaded_config_is_read_not_stored(settings, tmp_path):
    up = tmp_path / "gradio-tmp.yaml"
    cfg = gui_default_config()
    cfg.training.seed = 7
    cfg.save(up)
    out = config_cb.load_uploaded_config({"top/upload_cfg": str(up)}, settings)
    assert out["training.seed"] == 7 and out["top/upload_cfg"] is None
    assert not any(settings.uploads_dir.iterdir())


def test_validation_lists_every_problem_with_field_names(settings):
    values = _values(settings, **{"training.batch_size": 0, "training.learning_rate": 0.5, "lora.dropout": 1.5,
                                  "data.path": str(settings.home / "missing.json")})
    html = train_cb.preview_command(values, settings)[train_cb.STATUS]
    assert "does not exist" in html  # the dataset path is checked first
    values["data.path"] = str(settings.home)
    html = train_cb.preview_command(values, settings)[train_cb.STATUS]
    for name in ("training.batch_size", "training.learning_rate", "lora.dropout"):
        assert name in html, html


def test_apply_preset_fills_the_form(settings):
    from tunesmith.core.presets import list_presets

    name = list_presets()[0]
    out = config_cb.apply_preset({"model/preset": name, "top/lang": "en"}, settings)
    assert out["model.name_or_path"] and name in out["model/status"]
    with pytest.raises(UserError, match="no preset"):
        config_cb.apply_preset({"model/preset": ""}, settings)
