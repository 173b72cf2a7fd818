"""The form <-> RunConfig mapping: values in the boxes become exactly the RunConfig the CLI reads."""

from __future__ import annotations

import pytest

from tunesmith.app.form import (COLUMN_IDS, DS_OFFLOAD_ID, config_fields, config_from_values, form_ids, gui_default_config,
                                method_defaults, values_from_config)
from tunesmith.core import preflight
from tunesmith.core.config import EMBEDDED_MODEL, RunConfig
from tunesmith.core.errors import ConfigError


def test_form_values_build_the_expected_run_config():
    values = values_from_config(RunConfig())
    values.update({
        "model.name_or_path": "/models/tiny", "data.path": "/data/x.jsonl", "method.finetuning": "lora",
        "training.learning_rate": 1e-4, "training.batch_size": 4.0,   # gr.Number hands back floats
        "lora.r": 8.0, "lora.target_modules": "q_proj, v_proj", "eval.prompts": "Who are you?\n\nHi there\n",
        "data.map_fn": "columns", COLUMN_IDS["input"]: "question", COLUMN_IDS["output"]: " answer ",
        "distributed.deepspeed": "zero3", DS_OFFLOAD_ID: True, "training.max_steps": "25",
    })
    cfg = config_from_values(values)
    assert cfg.model.name_or_path == "/models/tiny"
    assert cfg.training.learning_rate == 1e-4
    assert cfg.training.batch_size == 4 and isinstance(cfg.training.batch_size, int)
    assert cfg.training.max_steps == 25
    assert cfg.lora.r == 8
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.eval.prompts == ["Who are you?", "Hi there"]
    assert cfg.data.columns == {"input": "question", "output": "answer"}
    assert cfg.distributed.deepspeed == "zero3_offload"


def test_every_field_round_trips_through_the_form():
    cfg = gui_default_config()
    cfg.distributed.deepspeed = "zero2_offload"
    cfg.data.columns = {"input": "q", "output": "a", "history": "h"}
    cfg.lora.target_modules = ["q_proj", "k_proj"]
    values = values_from_config(cfg)
    assert set(values) == set(form_ids())
    assert values["distributed.deepspeed"] == "zero2" and values[DS_OFFLOAD_ID] is True
    assert config_from_values(values) == cfg
    assert RunConfig.from_yaml(config_from_values(values).to_yaml()) == cfg


def test_every_run_config_field_has_a_widget_id():
    ids = set(form_ids())
    for path in config_fields():
        assert path in ids or path in ("data.columns",), path


def test_offload_only_applies_to_zero2_and_zero3():
    values = values_from_config(RunConfig())
    values.update({"distributed.deepspeed": "zero1", DS_OFFLOAD_ID: True})
    assert config_from_values(values).distributed.deepspeed == "zero1"


def test_wrong_type_names_the_field():
    values = values_from_config(RunConfig())
    values["training.batch_size"] = "four"
    with pytest.raises(ConfigError) as err:
        config_from_values(values)
    assert err.value.field == "training.batch_size"
    values["training.batch_size"] = None
    with pytest.raises(ConfigError, match="training.batch_size"):
        config_from_values(values)


def test_missing_values_keep_the_base_config():
    base = gui_default_config()
    cfg = config_from_values({"training.learning_rate": 3e-4}, base)
    assert cfg.training.learning_rate == 3e-4
    assert cfg.data.max_length == base.data.max_length and cfg.method.finetuning == "lora"


def test_gui_default_is_the_embedded_model_on_the_identity_demo_and_cpu_friendly():
    cfg = gui_default_config()
    assert cfg.model.name_or_path == EMBEDDED_MODEL
    assert cfg.data.path.endswith("assets/identity.json")
    assert cfg.method.finetuning == "lora"
    assert cfg.data.max_length <= 512 and cfg.training.num_epochs <= 3 and cfg.training.batch_size <= 4
    assert not preflight.problems(cfg, check_paths=False, check_env=False)


def test_method_defaults():
    assert method_defaults("full")["training.learning_rate"] == 2e-5
    assert method_defaults("dpo")["data.pack"] is False
    assert method_defaults("nonsense") == {}
