"""Several datasets in one run: ``data.sources``, each with its own map_fn, concatenated (as XTuner configs
concatenate datasets that each have their own ``dataset_map_fn``).

The single-source form stays as it was: ``data.path`` (+ ``map_fn``, ``columns``, ``max_samples``) is the first
source; ``data.sources`` adds more, each ``{path, map_fn, columns, max_rows}`` (``map_fn`` defaults to auto,
``max_rows`` 0 = all rows). Template, system prompt, max_length and packing are the run's, shared by all.

>>> from tunesmith.core.config import DataConfig
>>> [s.path for s in data_sources(DataConfig(path="a.json", sources=[{"path": "b.jsonl", "max_rows": 5}]))]
['a.json', 'b.jsonl']
>>> data_sources(DataConfig(sources=[{"path": "b.jsonl", "weight": 2}]))
Traceback (most recent call last):
...
tunesmith.core.errors.ConfigError: data.sources[0]: unknown key 'weight'. Fix: ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tunesmith.core.data.stats import DatasetStats
from tunesmith.core.errors import ConfigError

KEYS = ("path", "map_fn", "columns", "max_rows")


@dataclass(frozen=True)
class Source:
    path: str
    map_fn: str = "auto"
    columns: dict = field(default_factory=dict)
    max_rows: int = 0  # 0 = every row


def _source(item, where: str) -> Source:
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping {{path, map_fn, columns, max_rows}}, got {item!r}.",
                          "Write it as {path: more.jsonl, map_fn: openai}.", field=where)
    unknown = [k for k in item if k not in KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'.",
                          f"A source has {', '.join(KEYS)} (max_rows limits its rows; there is no weight: "
                          "sources are concatenated, as XTuner does).", field=where)
    path = item.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where} has no path.", "Give the file, folder or hub id: {path: more.jsonl}.",
                          field=f"{where}.path")
    columns = item.get("columns") or {}
    if not isinstance(columns, dict):
        raise ConfigError(f"{where}.columns must be a mapping, got {columns!r}.",
                          "Write it as {input: question, output: answer}.", field=f"{where}.columns")
    max_rows = item.get("max_rows") or 0
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
        raise ConfigError(f"{where}.max_rows must be a whole number >= 0, got {max_rows!r}.",
                          "Use 0 for every row, or e.g. 1000.", field=f"{where}.max_rows")
    map_fn = item.get("map_fn") or ("columns" if columns else "auto")
    return Source(path.strip(), str(map_fn), dict(columns), int(max_rows))


def data_sources(data) -> list[Source]:
    """The run's sources, in order: ``data.path`` first (when set), then ``data.sources``."""
    out = [Source(data.path, data.map_fn or "auto", dict(data.columns or {}), int(data.max_samples or 0))] \
        if data.path else []
    extra = getattr(data, "sources", None) or []
    if not isinstance(extra, (list, tuple)):
        raise ConfigError(f"data.sources must be a list, got {extra!r}.", "Write it as [{path: more.jsonl}].",
                          field="data.sources")
    out += [_source(item, f"data.sources[{i}]") for i, item in enumerate(extra)]
    return out


def source_config(data, source: Source):
    """``data`` as a single-source DataConfig for ``source`` (the run's template, system, max_length, ...)."""
    return dataclasses.replace(data, path=source.path, map_fn=source.map_fn, columns=dict(source.columns),
                               max_samples=source.max_rows, sources=[])


def merge_stats(parts: list, sources: list[Source]):
    """One DatasetStats for several sources (counts summed, each source's share kept in ``.sources``)."""
    first = parts[0]
    merged = DatasetStats(max_length=first.max_length, template=first.template,
                          map_fn=", ".join(dict.fromkeys(p.map_fn for p in parts)), scope=first.scope)
    for part, source in zip(parts, sources):
        merged.rows += part.rows
        merged.kept += part.kept
        merged.lengths.extend(part.lengths)
        merged.truncated += part.truncated
        merged.total_tokens += part.total_tokens
        merged.supervised_tokens += part.supervised_tokens
        merged.sequences += part.sequences
        prefix = f"{source.path}: " if len(parts) > 1 else ""
        for reason, n in part.dropped.items():
            merged.dropped[prefix + reason] = merged.dropped.get(prefix + reason, 0) + n
            merged.drop_examples.setdefault(prefix + reason, part.drop_examples.get(reason))
        for note, n in part.notes.items():
            merged.notes[prefix + note] = merged.notes.get(prefix + note, 0) + n
            merged.note_examples.setdefault(prefix + note, part.note_examples.get(note))
        merged.sources.append({"path": source.path, "map_fn": part.map_fn, "rows": part.rows, "kept": part.kept,
                               "tokens": part.total_tokens})
    return merged
