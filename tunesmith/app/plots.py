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
COLORS = {"loss": "#3b82f6", "eval loss": "#ef4444", "learning rate": "#8b5cf6", "grad norm": "#f59e0b",
          "tokens/s": "#22a06b", "peak memory MB": "#6b7280"}


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


def series_name(name: str, lang: str = "en") -> str:
    """A series as the legend shows it, in ``lang`` (``eval loss`` -> ``验证损失``)."""
    if lang == "en":
        return name
    from tunesmith.app.locales import text

    return text("series_" + name.replace(" ", "_").replace("/", "_"), lang)


def metric_frames(rows: list[dict], *, log_scale: bool = False, lang: str = "en") -> dict:
    """One long-format DataFrame per plot in :data:`PLOTS` (empty frames keep the columns); steps are
    whole numbers (the Trainer's global step), series names in ``lang``."""
    import pandas as pd

    frames = {}
    for plot, series in PLOTS.items():
        records = []
        for key, name in series:
            records += [(int(s), v, series_name(name, lang)) for s, v in metric_points(rows, key, log_scale=log_scale)]
        frames[plot] = pd.DataFrame.from_records(records, columns=COLUMNS)
    return frames


# d3 formats for the y axis: "3,348.500000" and "0.000200" become "3,349" and "2e-4"
Y_FORMATS = {"loss": ".3~f", "lr": ".1~e", "grad": ".3~g", "tps": ",.0f", "mem": ",.0f"}
MIN_STEP_SPAN = 10  # below this many steps the axis would tick 1.0, 1.1, ...: widen it instead


def plot_frame(frame):
    """What a LinePlot is sent: a single point becomes a short flat dash (a line of one point draws
    nothing), and the x range (whole steps, at least :data:`MIN_STEP_SPAN` wide, the last point inside).

    >>> import pandas as pd
    >>> shown, x_lim = plot_frame(pd.DataFrame({"step": [3], "value": [1.5], "series": ["loss"]}))
    >>> shown["step"].tolist(), shown["value"].tolist(), x_lim
    ([2.75, 3.25], [1.5, 1.5], [0, 10])
    """
    import pandas as pd

    lo, hi = int(frame["step"].min()), int(frame["step"].max())
    lonely = [name for name, group in frame.groupby("series") if len(group) == 1]
    if lonely:
        dashes = [(s + d, v, name) for s, v, name in frame[frame["series"].isin(lonely)][COLUMNS].itertuples(False)
                  for d in (-0.25, 0.25)]
        frame = pd.concat([frame[~frame["series"].isin(lonely)],
                           pd.DataFrame.from_records(dashes, columns=COLUMNS)], ignore_index=True)
    start = 0 if lo <= MIN_STEP_SPAN else lo
    return frame, [start, max(hi, start + MIN_STEP_SPAN)]


def y_title(plot: str, log_scale: bool, lang: str = "en") -> str:
    """Axis title, e.g. ``log10(loss)`` when the log scale is on.

    >>> y_title("loss", True), y_title("mem", False), y_title("loss", False, "zh")
    ('log10(loss)', 'MB', '损失')
    """
    from tunesmith.app.locales import text

    base = text(f"axis_{plot}", lang)
    return f"log10({base})" if log_scale else base
