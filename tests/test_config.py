import pytest

from tunesmith.core import preflight
from tunesmith.core.config import RunConfig, help_for
from tunesmith.core.errors import ConfigError


def test_defaults_match_xtuner_qlora():
    cfg = RunConfig()
    assert (cfg.training.learning_rate, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (2e-4, 64, 16, 0.1)
    assert cfg.training.warmup_ratio == 0.03 and cfg.training.lr_scheduler == "cosine"
    assert cfg.data.max_length == 2048 and cfg.data.pack is True
    assert cfg.lora.target_modules == ["all-linear"]


def test_yaml_round_trip_preserves_every_field():
    cfg = RunConfig().with_overrides(["training.batch_size=4", "data.columns={input: q, output: a}",
                                      "eval.prompts=[hi, there]", "method.finetuning=full"])
    again = RunConfig.from_yaml(cfg.to_yaml())
    assert again == cfg
    assert again.data.columns == {"input": "q", "output": "a"}
    assert again.eval.prompts == ["hi", "there"]


def test_every_field_has_help():
    import dataclasses

    from tunesmith.core.config import SECTIONS

    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert help_for(section, f.name), f"{section}.{f.name} has no help"


def test_unknown_key_names_close_match():
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"training": {"learnin_rate": 1e-4}})
    assert "training.learnin_rate" in str(err.value) and "learning_rate" in str(err.value)


def test_wrong_type_is_named():
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"training": {"batch_size": "many"}})
    assert "training.batch_size" in str(err.value) and "whole number" in str(err.value)


def test_yaml_string_float_is_accepted():
    # PyYAML reads 2e-4 (no dot) as a string; users mean the number.
    cfg = RunConfig.from_yaml("training:\n  learning_rate: 2e-4\n")
    assert cfg.training.learning_rate == 2e-4


def test_validation_names_field_and_fix(tmp_path):
    cfg = RunConfig().with_overrides(["training.batch_size=0", f"data.path={tmp_path}"])
    problems = preflight.problems(cfg, check_env=False)
    fields = {p.field for p in problems}
    assert "training.batch_size" in fields
    msg = next(str(p) for p in problems if p.field == "training.batch_size")
    assert ">= 1" in msg and "Fix:" in msg


def test_bad_yaml_reports_line():
    with pytest.raises(ConfigError) as err:
        RunConfig.from_yaml("training:\n  batch_size: [1\n")
    assert "line" in str(err.value)
