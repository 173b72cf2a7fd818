"""HTML and data frames for the Data and Model tabs (pure functions of engine results).

The preview shows each sample twice: the mapped conversation (who says what) and the exact text
the model sees, where supervised tokens (the ones the loss is computed on) are highlighted and
masked tokens (prompt, system text) are greyed.

>>> segment_html([("User: hi\\n", False), ("Hello!", True)])
'<pre class="ts-tokens"><span class="ts-masked">User: hi\\n</span><span class="ts-sup">Hello!</span></pre>'
"""

from __future__ import annotations

from html import escape
from typing import Any, Iterable

from tunesmith.app.engine_text import translate

ROLE_NAMES = {"system": "system", "input": "user", "output": "assistant", "user": "user", "assistant": "assistant"}


def _get(obj: Any, name: str, default=None):
    """Read ``name`` from a dataclass-like object or a dict (engine results come as either)."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def segment_html(segments: Iterable) -> str:
    """Templated text with ``<span class="ts-sup">`` for trained-on text, ``ts-masked`` for the rest."""
    parts = []
    for seg in segments:
        if isinstance(seg, (list, tuple)):
            text, supervised = seg[0], seg[1]
        else:
            text, supervised = _get(seg, "text"), _get(seg, "supervised")
        cls = "ts-sup" if supervised else "ts-masked"
        parts.append(f'<span class="{cls}">{escape(str(text))}</span>')
    return f'<pre class="ts-tokens">{"".join(parts)}</pre>'


def conversation_html(conversation: list) -> str:
    """XTuner conversation turns (``{"system","input","output"}``) or chat messages as role lines."""
    rows = []
    for turn in conversation or []:
        if "role" in turn:  # chat-message form
            items = [(turn.get("role", ""), turn.get("content", ""))]
        else:
            items = [(k, turn[k]) for k in ("system", "input", "output") if turn.get(k)]
        for role, content in items:
            who = ROLE_NAMES.get(role, role)
            rows.append(f'<div class="ts-turn ts-{escape(who)}"><b>{escape(who)}</b> {escape(str(content))}</div>')
    return f'<div class="ts-conv">{"".join(rows)}</div>'


def preview_html(samples: Iterable, *, legend: tuple[str, str] = ("trained on", "masked (not trained on)")) -> str:
    """All preview samples: conversation, then the highlighted templated text."""
    blocks = [f'<div class="ts-legend"><span class="ts-sup">{escape(legend[0])}</span> '
              f'<span class="ts-masked">{escape(legend[1])}</span></div>']
    for sample in samples:
        index = _get(sample, "index", "?")
        blocks.append(f'<div class="ts-sample"><div class="ts-sample-head">#{escape(str(index))}</div>'
                      f'{conversation_html(_get(sample, "conversation") or [])}'
                      f'{segment_html(_get(sample, "segments") or [])}</div>')
    return "".join(blocks)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def stats_html(stats: Any, lang: str = "en") -> str:
    """A small table: rows, kept, dropped (with reasons and the first row), token lengths,
    truncated and supervised share, packing. ``stats`` is ``DatasetStats.to_dict()`` or alike;
    its labels come from the locale table (``stat_*``)."""
    from tunesmith.app.locales import text

    def t(key: str, **fmt) -> str:
        return escape(text(f"stat_{key}", lang, **fmt))

    lengths = list(_get(stats, "lengths") or [])
    scope = _get(stats, "scope")
    rows = [(t("rows"), f"{_get(stats, 'rows')}" + (f" ({scope})" if scope else "")), (t("kept"), _get(stats, "kept"))]
    dropped = _get(stats, "dropped") or {}
    examples = _get(stats, "drop_examples") or {}
    total_dropped = sum(dropped.values()) if isinstance(dropped, dict) else dropped
    rows.append((t("dropped"), total_dropped))
    if isinstance(dropped, dict):
        for reason, count in sorted(dropped.items(), key=lambda kv: -kv[1]):
            first = " " + text("stat_first_row", lang, row=examples[reason]) if reason in examples else ""
            rows.append((f"&nbsp;&nbsp;· {escape(translate(str(reason), lang))}", f"{count}{first}"))
    for note, count in (_get(stats, "notes") or {}).items():
        rows.append((t("note", note=note), count))
    sources = _get(stats, "sources") or []
    if len(sources) > 1:  # several datasets in one run: each one's share of the tokens
        total = sum(int(s.get("tokens") or 0) for s in sources) or 1
        for s in sources:
            rows.append((t("source", path=s.get("path"), map_fn=s.get("map_fn")),
                         text("stat_source_share", lang, kept=s.get("kept"), rows=s.get("rows"),
                              tokens=s.get("tokens"), share=f"{int(s.get('tokens') or 0) / total:.0%}")))
    if lengths:
        ordered = sorted(lengths)
        rows += [(t("tokens_range"),
                  f"{ordered[0]} / {ordered[len(ordered) // 2]} / {ordered[-1]}"),
                 (t("tokens_total"), sum(lengths))]
    rows += [(t("truncated"), _pct(_get(stats, "truncated_share"))),
             (t("supervised"), _pct(_get(stats, "supervised_share")))]
    if _get(stats, "packed"):
        full = _pct(_get(stats, "packing_efficiency"))
        rows.append((t("packed"), text("stat_packed_value", lang, sequences=_get(stats, "sequences"), full=full)))
    for key in ("map_fn", "template"):
        if _get(stats, key):
            rows.append((t(key), _get(stats, key)))
    body = "".join(f"<tr><td>{k}</td><td>{escape(str(v)) if v is not None else '-'}</td></tr>" for k, v in rows)
    return f'<table class="ts-table ts-stats">{body}</table>'


def histogram_frame(stats: Any, bins: int = 20):
    """Token-length histogram as a DataFrame with columns ``tokens`` (bin label, ordered) and ``rows``.

    Bins ``lengths`` into whole-token bins itself; only without lengths does it use the engine's
    ``histogram`` (``{edges, counts}`` or ``(edges, counts)``).
    """
    import pandas as pd

    lengths = list(_get(stats, "lengths") or [])
    if lengths:
        edges, counts = bin_lengths(lengths, bins)
        labels = [f"{edges[i]}-{edges[i + 1] - 1}" if edges[i + 1] - edges[i] > 1 else str(edges[i])
                  for i in range(len(counts))]
        return pd.DataFrame({"tokens": labels, "rows": counts, "order": list(range(len(counts)))})
    hist = _get(stats, "histogram")
    if callable(hist):
        hist = hist(bins)
    edges = counts = None
    if isinstance(hist, dict) and "counts" in hist:
        edges, counts = list(hist.get("edges") or hist.get("bins") or []), list(hist["counts"])
    elif isinstance(hist, (list, tuple)) and len(hist) == 2 and isinstance(hist[0], (list, tuple)):
        edges, counts = list(hist[0]), list(hist[1])
    if counts is None or len(edges) != len(counts) + 1:
        edges, counts = bin_lengths(list(_get(stats, "lengths") or []), bins)
    labels = [f"{int(edges[i])}-{int(edges[i + 1])}" for i in range(len(counts))]
    return pd.DataFrame({"tokens": labels, "rows": [int(c) for c in counts], "order": list(range(len(counts)))})


def bin_lengths(lengths: list[int], bins: int = 20) -> tuple[list[int], list[int]]:
    """Equal-width integer bins over ``lengths``.

    >>> bin_lengths([1, 2, 3, 10], bins=3)
    ([1, 5, 9, 13], [3, 0, 1])
    """
    if not lengths:
        return [0, 1], [0]
    lo, hi = min(lengths), max(lengths)
    width = max(1, -(-(hi - lo + 1) // bins))
    edges = [lo + i * width for i in range(bins + 1)]
    while len(edges) > 2 and edges[-2] > hi:
        edges.pop()
    counts = [0] * (len(edges) - 1)
    for n in lengths:
        counts[min((n - lo) // width, len(counts) - 1)] += 1
    return edges, counts


FACT_ORDER = ("family", "params", "layers", "hidden", "heads", "kv_heads", "intermediate", "vocab", "context",
              "dtype", "template", "architecture", "model_type", "tied_embeddings", "needs_remote_code", "config_path")
FACT_SKIP = ("params_human", "name", "source", "param_source", "head_dim", "experts", "experts_per_token")


def human_count(n: Any) -> str:
    """``134515008`` -> ``'134.5 M'``.

    >>> human_count(134515008), human_count(7_241_732_096), human_count("n/a")
    ('134.5 M', '7.24 B', 'n/a')
    """
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return str(n)
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    return f"{n:,}"


def facts_html(facts: dict, lang: str = "en") -> str:
    """Model facts as a two-column table, the most useful first: plain names, with config.json's key in
    the tooltip (``kv_heads`` reads "Key/value heads (grouped-query attention)")."""
    from tunesmith.app.locales import MESSAGES, text

    keys = [k for k in FACT_ORDER if k in facts] + [k for k in facts if k not in FACT_ORDER and k not in FACT_SKIP]
    table = MESSAGES.get(lang, MESSAGES["en"])
    body = []
    for key in keys:
        value = facts[key]
        if isinstance(value, (dict, list)):
            continue
        shown = human_count(value) if key == "params" else value
        if isinstance(value, bool):
            shown = text("yes" if value else "no", lang)
        name = text(f"fact_{key}", lang) if f"fact_{key}" in table else key
        body.append(f'<tr><td title="{escape(key)}" data-key="{escape(key)}">{escape(name)}</td>'
                    f"<td>{escape(str(shown))}</td></tr>")
    return f'<table class="ts-table ts-facts">{"".join(body)}</table>'
