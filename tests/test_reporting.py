"""training.report_to: TensorBoard event files hold the same numbers as metrics.jsonl; trackers need their package."""

from __future__ import annotations

import pytest

from tunesmith.core import preflight


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_tiny_run_writes_tensorboard_events_equal_to_metrics_jsonl(tmp_path, tiny_model_dir):
    from tunesmith.core.train.launcher import run_here
    from tunesmith.core.train.reporting import TENSORBOARD_DIR
    from tunesmith.core.train.rundir import RunDir
    from toy import sft_rows, toy_config, write_json

    data = write_json(sft_rows(40), tmp_path / "toy.json")
    cfg = toy_config(tiny_model_dir, data, tmp_path / "run", ["training.max_steps=3", "training.save_steps=0",
                                                              "data.eval_size=10", "training.eval_steps=3"])
    assert cfg.training.report_to == "tensorboard"  # on by default
    status = run_here(cfg)
    assert status["state"] == "finished", status
    metrics = RunDir(cfg.output.run_dir).read_metrics()
    train = [m for m in metrics if m["kind"] == "train"]
    evals = [m for m in metrics if m["kind"] == "eval"]
    assert len(train) == 3 and evals

    log_dir = tmp_path / "run" / TENSORBOARD_DIR
    assert list(log_dir.glob("events.out.tfevents.*"))
    tb = _scalars(log_dir)
    for key, tag in (("loss", "train/loss"), ("learning_rate", "train/learning_rate"),
                     ("grad_norm", "train/grad_norm"), ("tokens_per_s", "train/tokens_per_s"),
                     ("peak_mem_mb", "train/peak_mem_mb")):
        assert sorted(tb[tag]) == [m["step"] for m in train], tag
        for m in train:  # event files store float32
            assert tb[tag][m["step"]] == pytest.approx(m[key], rel=1e-6, abs=1e-9), (tag, m)
    assert tb["eval/loss"] == pytest.approx({m["step"]: m["eval_loss"] for m in evals}, rel=1e-6)


def test_report_to_none_writes_no_events_and_trainer_integrations_stay_off(tmp_path):
    from tunesmith.core.train.reporting import metric_sinks, trainer_report_to

    assert metric_sinks("none", tmp_path, True) == []
    assert metric_sinks("tensorboard", tmp_path, False) == []  # only rank 0 writes
    assert [type(s).__name__ for s in metric_sinks("tensorboard", tmp_path, True)] == ["TensorBoardSink"]
    assert trainer_report_to("tensorboard", tmp_path) == "none"  # ours, not the Trainer's callback
    assert trainer_report_to("none", tmp_path) == "none"


def test_missing_tracker_package_is_refused_with_a_fix(monkeypatch, tmp_path):
    import importlib.util

    from tunesmith.core.config import RunConfig
    from tunesmith.core.errors import ConfigError
    from tunesmith.core.train import reporting

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = RunConfig().with_overrides(["training.report_to=wandb"])
    problems = [p for p in preflight.problems(cfg, check_paths=False) if p.field == "training.report_to"]
    assert len(problems) == 1 and "pip install wandb" in str(problems[0])
    with pytest.raises(ConfigError, match="needs the wandb package"):
        reporting.trainer_report_to("wandb", tmp_path)
    bad = RunConfig().with_overrides(["training.report_to=tensorbord"])
    assert any("Did you mean: tensorboard" in str(p) for p in preflight.problems(bad, check_paths=False))


def test_mlflow_and_wandb_are_pointed_at_the_run_folder(monkeypatch, tmp_path):
    import importlib.util

    from tunesmith.core.train import reporting

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name in ("wandb", "mlflow", "trackio") else real(name, *a))
    for var in ("WANDB_MODE", "WANDB_DIR", "MLFLOW_TRACKING_URI", "TRACKIO_DIR"):
        monkeypatch.delenv(var, raising=False)
    import os

    assert reporting.trainer_report_to("wandb", tmp_path) == "wandb"
    assert os.environ["WANDB_MODE"] == "offline" and os.environ["WANDB_DIR"] == str(tmp_path.resolve())
    assert reporting.trainer_report_to("mlflow", tmp_path) == "mlflow"
    assert os.environ["MLFLOW_TRACKING_URI"] == (tmp_path.resolve() / "mlruns").as_uri()
    assert reporting.trainer_report_to("trackio", tmp_path) == "trackio"
    assert os.environ["TRACKIO_DIR"] == str(tmp_path.resolve() / "trackio")
