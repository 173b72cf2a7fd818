"""What a dataset turns into, readable by a non-expert: mapped conversation, templated text with the
supervised spans marked, token ids and labels, and statistics (used by the CLI and the GUI).

Samples are the first ``n`` rows (file order, unshuffled, unpacked) that survive filtering; the
statistics cover the first ``max_stats_rows`` rows (all of a normal-sized file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tunesmith.core.data.encode import IGNORE_INDEX
from tunesmith.core.data.pipeline import collect_stats, encode_rows, make_spec, nothing_left_error, row_conversation
from tunesmith.core.data.stats import DatasetStats

BATCH = 1000


@dataclass
class SamplePreview:
    index: int  # row number in the file (0-based)
    conversation: list  # the map_fn's output
    text: str  # the templated text the model sees
    segments: list  # [(text, supervised: bool), ...] in order
    input_ids: list
    labels: list
    truncated: bool = False

    def to_dict(self) -> dict:
        out = asdict(self)
        out["segments"] = [[t, bool(s)] for t, s in self.segments]
        return out

    def marked(self, left: str = "[[", right: str = "]]") -> str:
        """The text with supervised spans wrapped in ``left``/``right``.

        >>> SamplePreview(0, [], "Q: hi A: yo", [("Q: hi A: ", False), ("yo", True)], [], []).marked()
        'Q: hi A: [[yo]]'
        """
        return "".join(f"{left}{t}{right}" if s else t for t, s in self.segments)


@dataclass
class DataPreview:
    samples: list[SamplePreview]
    stats: DatasetStats
    map_fn: str
    template: str
    columns: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"samples": [s.to_dict() for s in self.samples], "stats": self.stats.to_dict(),
                "map_fn": self.map_fn, "template": self.template, "columns": list(self.columns)}

    def warnings(self) -> list[str]:
        out = []
        for reason, count in sorted(self.stats.dropped.items(), key=lambda kv: -kv[1]):
            first = self.stats.drop_examples.get(reason)
            out.append(f"{count} row(s) dropped: {reason} (first: row {first})")
        for note, count in self.stats.notes.items():
            first = self.stats.note_examples.get(note)
            out.append(f"{count} row(s): {note}" + ("" if first is None else f" (first: row {first})"))
        return out


def segments_of(tokenizer, input_ids: list[int], labels: list[int]) -> list[tuple[str, bool]]:
    """Consecutive tokens grouped by supervised / masked, decoded to text."""
    groups: list[tuple[list[int], bool]] = []
    for tok, lab in zip(input_ids, labels):
        sup = lab != IGNORE_INDEX
        if groups and groups[-1][1] == sup:
            groups[-1][0].append(tok)
        else:
            groups.append(([tok], sup))
    return [(tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False), sup)
            for ids, sup in groups]


def preview(data, tokenizer, *, model_name_or_path: str = "", stage: str = "sft", n: int = 3,
            max_stats_rows: int = 20000, rows=None) -> DataPreview:
    """Preview the first ``n`` surviving samples and the statistics of a dataset.

    ``rows``: the already loaded ``datasets.Dataset`` of ``data.path`` (else it is loaded here).
    """
    from tunesmith.core.data.loading import load_rows
    from tunesmith.core.data.sources import data_sources

    sources = data_sources(data)
    if len(sources) > 1 and stage not in ("dpo", "orpo"):
        return _sources_preview(data, sources, tokenizer, model_name_or_path, stage, n, max_stats_rows, rows)
    ds = rows if rows is not None else load_rows(data.path, split=data.split)
    if stage in ("dpo", "orpo"):
        return _preference_preview(data, tokenizer, ds, model_name_or_path, n)
    spec = make_spec(data, tokenizer, ds.column_names, ds[0], model_name_or_path=model_name_or_path or "",
                     stage=stage)
    limit = ds.num_rows if not max_stats_rows else min(ds.num_rows, int(max_stats_rows))
    columns: dict[str, list] = {}
    samples: list[SamplePreview] = []
    for start in range(0, limit, BATCH):
        stop = min(limit, start + BATCH)
        batch = ds[start:stop]
        table = encode_rows(batch, list(range(start, stop)), spec)
        out = table.drop_columns(["input_ids", "labels"]).to_pydict()
        for key, values in out.items():
            columns.setdefault(key, []).extend(values)
        for j in range(stop - start):
            if len(samples) >= n or out["drop_reason"][j]:
                continue
            row = {k: batch[k][j] for k in batch}
            conversation, _ = row_conversation(row, spec)
            ids, labels = table.column("input_ids")[j].as_py(), table.column("labels")[j].as_py()
            samples.append(SamplePreview(
                index=start + j, conversation=conversation,
                text=tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
                segments=segments_of(tokenizer, ids, labels), input_ids=list(ids), labels=list(labels),
                truncated=out["full_length"][j] > out["length"][j]))
    stats = collect_stats(columns, spec, limit)
    if limit < ds.num_rows:
        stats.scope = f"statistics over the first {limit} of {ds.num_rows} rows"
    if stats.kept == 0:
        raise nothing_left_error(stats, data.path)
    return DataPreview(samples=samples, stats=stats, map_fn=spec.map_fn.name, template=spec.template,
                       columns=list(ds.column_names))


def _sources_preview(data, sources, tokenizer, model_name_or_path, stage, n, max_stats_rows, rows) -> DataPreview:
    """Several sources: each previewed with its own map_fn; samples from each in turn, one statistics
    block with each source's share."""
    from tunesmith.core.data.sources import merge_stats, source_config

    each = -(-n // len(sources)) if n else 0
    parts = [preview(source_config(data, s), tokenizer, model_name_or_path=model_name_or_path, stage=stage, n=each,
                     max_stats_rows=max_stats_rows, rows=rows if i == 0 else None) for i, s in enumerate(sources)]
    by_source = [p.samples for p in parts]
    shortest = min(map(len, by_source))
    samples = [s for group in zip(*by_source) for s in group] + [s for g in by_source for s in g[shortest:]]
    stats = merge_stats([p.stats for p in parts], sources)
    return DataPreview(samples=samples[:n], stats=stats, map_fn=stats.map_fn, template=parts[0].template,
                       columns=list(dict.fromkeys(c for p in parts for c in p.columns)))


def _preference_preview(data, tokenizer, ds, model_name_or_path: str, n: int) -> DataPreview:
    """DPO/ORPO pairs as TRL will get them: the prompt (masked) then the chosen answer (learned); the
    rejected answer is shown in the conversation. Statistics count the pairs kept and dropped."""
    from dataclasses import replace

    from tunesmith.core.data.preference import build_preference_data
    from tunesmith.core.data.templates import CHAT_TEMPLATE

    built = build_preference_data(replace(data, eval_size=0, max_samples=0), tokenizer,
                                  model_name_or_path=model_name_or_path, rows=ds, keep_rows=True)
    samples = []
    for pair in built.train.select(range(min(n, built.train.num_rows))):
        prompt, chosen, rejected = pair["prompt"], pair["chosen"], pair["rejected"]
        if built.template == CHAT_TEMPLATE:
            prompt = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            chosen, rejected = chosen[0]["content"], rejected[0]["content"]
        samples.append(SamplePreview(index=pair["row"], conversation=[{"input": prompt, "output": chosen,
                                                                       "rejected": rejected}],
                                     text=prompt + chosen, segments=[(prompt, False), (chosen, True)],
                                     input_ids=[], labels=[]))
    return DataPreview(samples=samples, stats=built.stats, map_fn="preference", template=built.template,
                       columns=list(ds.column_names))
