"""metrics.jsonl records -> long-format data frames for gradio's LinePlot.

Each plot gets columns ``step``, ``value`` and ``series`` (so loss and eval loss share one chart
with a legend). With ``log_scale`` values are shown as log10 (gradio's native plots have no log
axis), and non-positive values are dropped since they have no logarithm.

>>> rows = [{"step": 1, "loss": 2.0, "learning_rate": 1e-4}, {"step": 2, "loss": 1.0, "eval_loss": 1.5}]
>>> frames = metric_frames(rows)
>>> frames["loss"][["step", "value", "series"]].values.tolist()
[[1, 2.0, 'loss'], [2, 1.0, 'loss'], [2, 1.5, 'eval loss']]
"""

from __future__ import annotations

import math

# plot id -> [(metrics key, series name)]
PLOTS: dict[str, list[tuple[str, str]]] = {
    "loss": [("loss", "loss"), ("eval_loss", "eval loss")],
    "lr": [("learning_rate", "learning rate")],
    "grad": [("grad_norm", "grad norm")],
    "tps": [("tokens_per_s", "tokens/s")],
    "mem": [("peak_mem_mb", "peak memory MB")],
}
COLUMNS = ["step", "value", "series"]


def _number(x) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def metric_points(rows: list[dict], key: str, *, log_scale: bool = False) -> list[tuple[float, float]]:
    """``(step, value)`` pairs of one metric, in step order, skipping missing/non-finite values."""
    points = []
    for row in rows:
        step, value = _number(row.get("step")), _number(row.get(key))
        if step is None or value is None:
            continue
        if log_scale:
            if value <= 0:
                continue
            value = math.log10(value)
        points.append((step, value))
    points.sort(key=lambda p: p[0])
    return points


def metric_frames(rows: list[dict], *, log_scale: bool = False) -> dict:
    """One long-format DataFrame per plot in :data:`PLOTS` (empty frames keep the columns)."""
    import pandas as pd

    frames = {}
    for plot, series in PLOTS.items():
        records = []
        for key, name in series:
            records += [(int(s) if float(s).is_integer() else s, v, name)
                        for s, v in metric_points(rows, key, log_scale=log_scale)]
        frames[plot] = pd.DataFrame.from_records(records, columns=COLUMNS)
    return frames


def y_title(plot: str, log_scale: bool) -> str:
    """Axis title, e.g. ``log10(loss)`` when the log scale is on.

    >>> y_title("loss", True), y_title("mem", False)
    ('log10(loss)', 'MB')
    """
    base = {"loss": "loss", "lr": "learning rate", "grad": "grad norm", "tps": "tokens/s", "mem": "MB"}[plot]
    return f"log10({base})" if log_scale else base
