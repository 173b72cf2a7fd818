"""metrics.jsonl -> plot data frames (loss with eval loss, lr, grad norm, tokens/s, memory)."""

from __future__ import annotations

import math

from tunesmith.app.plots import PLOTS, metric_frames, metric_points, y_title

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


# ---- issue 12 item 9: integer steps, readable ticks, no stray legend, a single point visible

def test_plot_updates_have_whole_steps_readable_ticks_and_no_stray_series_legend():
    from tunesmith.app.callbacks.train_cb import plot_update

    frames = metric_frames([{"step": s, "loss": 3.0 - s / 10, "tokens_per_s": 3348.5} for s in range(1, 13)])
    tps = plot_update(frames["tps"], "tokens/s", "tps")
    assert tps["x_axis_format"] == "d" and tps["y_axis_format"] == ",.0f"  # 3,349, not 3,348.500000
    assert tps["colors_in_legend"] == [] and tps["color_title"] == ""  # one series: no "series" legend
    assert tps["x_lim"] == [0, 12]  # the last point (step 12) is inside the axis
    assert tps["value"]["step"].tolist() == list(range(1, 13))
    assert plot_update(frames["loss"], "loss", "loss")["y_axis_format"] == ".3~f"
    lr = plot_update(metric_frames([{"step": 1, "learning_rate": 2e-4}, {"step": 2, "learning_rate": 1e-4}])["lr"],
                     "lr", "lr")
    assert lr["y_axis_format"] == ".1~e" and lr["x_lim"] == [0, 10]  # a short run still ticks 0, 2, 4 ...
    both = plot_update(metric_frames([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.7}])["loss"],
                       "loss", "loss")
    assert both["colors_in_legend"] == ["eval loss", "loss"]


def test_a_single_point_is_drawn_as_a_visible_dash():
    from tunesmith.app.callbacks.train_cb import plot_update

    one = plot_update(metric_frames([{"step": 1, "loss": 2.5}])["loss"], "loss", "loss")
    assert one["value"]["step"].tolist() == [0.75, 1.25] and one["value"]["value"].tolist() == [2.5, 2.5]


def test_axes_and_series_in_the_page_language():
    from tunesmith.app.callbacks.train_cb import plot_update

    frames = metric_frames([{"step": 1, "loss": 2.0, "eval_loss": 2.1}, {"step": 2, "loss": 1.0}], lang="zh")
    assert set(frames["loss"]["series"]) == {"损失", "验证损失"}
    update = plot_update(frames["loss"], y_title("loss", False, "zh"), "loss", "zh")
    assert update["x_title"] == "步" and update["y_title"] == "损失"
    assert update["color_map"] == {"损失": "#3b82f6", "验证损失": "#ef4444"}


def test_loss_points_count_matches_the_curve(tmp_path):
    import json

    from tunesmith.app.callbacks import train_cb
    from tunesmith.app.settings import AppSettings
    from tunesmith.core.train.rundir import RunDir

    s = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")})
    s.ensure_dirs()
    rd = RunDir(s.runs_root / "r1")
    rd.write_status(state="finished", step=12, total_steps=12)
    rd.metrics_path.write_text("".join(json.dumps({"step": i, "total_steps": 12, "loss": 1.0}) + "\n"
                                       for i in range(1, 13)))
    out = train_cb.poll({"train/current": str(rd.path), "top/lang": "en"}, s)
    assert 'data-points="12"' in out["train/points"]
    assert out["train/plot_loss"]["value"]["step"].max() == 12 and out["train/plot_loss"]["x_lim"][1] >= 12
