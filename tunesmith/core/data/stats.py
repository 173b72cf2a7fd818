"""Dataset statistics shown in the preview, the CLI and the GUI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class DatasetStats:
    """What happened to the rows of a dataset on their way to training samples."""

    rows: int = 0  # rows read (after max_samples)
    kept: int = 0  # samples that reached training
    dropped: dict = field(default_factory=dict)  # reason -> count
    drop_examples: dict = field(default_factory=dict)  # reason -> first row number (0-based, file order)
    notes: dict = field(default_factory=dict)  # harmless changes, e.g. trailing user turns removed -> count
    note_examples: dict = field(default_factory=dict)  # note -> first row number
    lengths: list = field(default_factory=list)  # tokens per kept sample (after truncation)
    truncated: int = 0  # kept samples cut to max_length
    total_tokens: int = 0
    supervised_tokens: int = 0
    max_length: int = 0
    template: str = ""
    map_fn: str = ""
    sequences: int = 0  # rows after packing (== kept when not packed)
    packed: bool = False
    scope: str = ""  # e.g. "first 20000 of 1000000 rows" when only part was examined
    sources: list = field(default_factory=list)  # several sources: [{path, map_fn, rows, kept, tokens}, ...]

    @property
    def truncated_share(self) -> float:
        return self.truncated / self.kept if self.kept else 0.0

    @property
    def supervised_share(self) -> float:
        return self.supervised_tokens / self.total_tokens if self.total_tokens else 0.0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def packing_efficiency(self) -> float:
        """Share of the sequences' max_length capacity filled with tokens."""
        return self.total_tokens / (self.sequences * self.max_length) if self.sequences and self.max_length else 0.0

    def histogram(self, bins: int = 10) -> dict:
        """Token-length histogram: {"edges": [...], "counts": [...]} (edges has one more entry)."""
        if not self.lengths:
            return {"edges": [], "counts": []}
        counts, edges = np.histogram(np.asarray(self.lengths), bins=bins)
        return {"edges": [int(round(e)) for e in edges], "counts": [int(c) for c in counts]}

    def length_summary(self) -> dict:
        if not self.lengths:
            return {}
        arr = np.asarray(self.lengths)
        return {"min": int(arr.min()), "mean": round(float(arr.mean()), 1), "p50": int(np.percentile(arr, 50)),
                "p95": int(np.percentile(arr, 95)), "max": int(arr.max())}

    def add_drop(self, reason: str, row: int) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.drop_examples.setdefault(reason, row)

    def add_note(self, note: str, row: int) -> None:
        self.notes[note] = self.notes.get(note, 0) + 1
        self.note_examples.setdefault(note, row)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(truncated_share=self.truncated_share, supervised_share=self.supervised_share,
                   histogram=self.histogram(), length_summary=self.length_summary(),
                   packing_efficiency=self.packing_efficiency, dropped_total=self.dropped_total)
        return out

    def drop_summary(self) -> str:
        """``"2 empty answer (first: row 3); 1 ..."``"""
        parts = [f"{n} {reason} (first: row {self.drop_examples.get(reason, '?')})"
                 for reason, n in sorted(self.dropped.items(), key=lambda kv: -kv[1])]
        return "; ".join(parts)

    def lines(self) -> list[str]:
        """Human-readable summary lines for the CLI."""
        out = [f"rows: {self.rows}{' (' + self.scope + ')' if self.scope else ''}   kept: {self.kept}   "
               f"dropped: {self.dropped_total}"]
        if len(self.sources) > 1:
            out.extend(share_lines(self.sources))
        for reason, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]):
            out.append(f"  dropped {n}: {reason} (first at row {self.drop_examples.get(reason, '?')})")
        for note, n in self.notes.items():
            first = self.note_examples.get(note)
            out.append(f"  note: {note}: {n} row(s){'' if first is None else f' (first at row {first})'}")
        s = self.length_summary()
        if s:
            out.append(f"tokens per sample: min {s['min']}, mean {s['mean']}, median {s['p50']}, "
                       f"95% {s['p95']}, max {s['max']} (max_length {self.max_length})")
        out.append(f"truncated: {self.truncated} ({self.truncated_share:.1%})   supervised tokens: "
                   f"{self.supervised_tokens} of {self.total_tokens} ({self.supervised_share:.1%})")
        if self.packed:
            out.append(f"packed into {self.sequences} sequences ({self.packing_efficiency:.1%} full)")
        return out


def share_lines(sources: list[dict]) -> list[str]:
    """One line per source: samples, tokens and its share of the tokens.

    >>> share_lines([{"path": "a.json", "map_fn": "alpaca", "rows": 4, "kept": 3, "tokens": 300},
    ...              {"path": "b.jsonl", "map_fn": "openai", "rows": 2, "kept": 2, "tokens": 100}])
    ['  source a.json (alpaca): 3 of 4 rows kept, 300 tokens (75% of the tokens)', \
'  source b.jsonl (openai): 2 of 2 rows kept, 100 tokens (25% of the tokens)']
    """
    total = sum(s["tokens"] for s in sources) or 1
    return [f"  source {s['path']} ({s['map_fn']}): {s['kept']} of {s['rows']} rows kept, {s['tokens']} tokens "
            f"({s['tokens'] / total:.0%} of the tokens)" for s in sources]
