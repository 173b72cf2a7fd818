"""metrics.jsonl -> plot data frames (loss with eval loss, lr, grad norm, tokens/s, memory)."""

from __future__ import annotations

import math

from app.plots import PLOTS, metric_frames, metric_points, y_title

ROWS = [
    {"step": 1, "total_steps": 4, "loss": 2.5, "learning_rate": 1e-4, "grad_norm": 3.0, "tokens_per_s": 100.0,
     "peak_mem_mb": 500},
    {"step": 2, "loss": 2.0, "learning_rate": 2e-4, "grad_norm": float("nan"), "tokens_per_s": 120.0},
    {"step": 2, "eval_loss": 2.2},
    {"step": 3, "loss": 0.0, "learning_rate": 1e-4},
    {"step": "bad", "loss": 1.0},
]


def test_frames_have_one_series_per_metric():
    frames = metric_frames(ROWS)
    assert set(frames) == set(PLOTS)
    loss = frames["loss"]
    assert list(loss.columns) == ["step", "value", "series"]
    assert loss[loss.series == "loss"][["step", "value"]].values.tolist() == [[1, 2.5], [2, 2.0], [3, 0.0]]
    assert loss[loss.series == "eval loss"][["step", "value"]].values.tolist() == [[2, 2.2]]
    assert frames["grad"]["value"].tolist() == [3.0]  # NaN dropped
    assert frames["mem"]["value"].tolist() == [500.0]
    assert frames["tps"]["step"].tolist() == [1, 2]


def test_log_scale_uses_log10_and_drops_non_positive():
    loss = metric_frames(ROWS, log_scale=True)["loss"]
    values = loss[loss.series == "loss"]["value"].tolist()
    assert len(values) == 2 and math.isclose(values[0], math.log10(2.5))
    assert y_title("loss", True) == "log10(loss)"


def test_empty_metrics_give_empty_frames_with_columns():
    frames = metric_frames([])
    assert all(len(f) == 0 and list(f.columns) == ["step", "value", "series"] for f in frames.values())
    assert metric_points([{"step": 1}], "loss") == []
