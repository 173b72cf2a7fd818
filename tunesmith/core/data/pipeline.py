"""From a DataConfig to training batches: load -> map_fn -> template -> tokenise + mask -> pack.

The row-level work runs as one batched ``datasets.map`` (``num_proc`` processes, cached by
``datasets`` for file-backed data). Rows that cannot become a training sample are dropped with a
counted reason; a dataset left with nothing raises a DataError that says why.

Row rules (decided here, tested in tests/test_data_pipeline.py):
- a conversation ending on a user turn loses that turn (as XTuner); with no answer left it is dropped;
- a turn with an empty answer drops the whole row ("empty answer"): training on it would only
  teach the model to stop;
- a sample whose supervised tokens were all cut by max_length is dropped (as XTuner);
- a value that is not text (a list, an object, true/false, NaN) drops its row, naming the field; a plain
  number becomes its digits and is noted; a message without content drops its row;
- only the head of a very long row is tokenised (encode.char_budget) and the row is noted, so one
  huge row cannot run the machine out of memory.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from tunesmith.core.data.batch import EncodedBatch, starts_of
from tunesmith.core.data.encode import apply_system, make_encoder, overlap_chunk
from tunesmith.core.data.map_fns import COLUMNS, RowSkipped, check_columns, get_map_fn, suggest_map_fn
from tunesmith.core.data.map_fns.base import NUMBER_NOTE, MapFn, text, took_number
from tunesmith.core.data.stats import DatasetStats
from tunesmith.core.data.templates import CHAT_TEMPLATE, get_template, resolve_template
from tunesmith.core.errors import ConfigError, DataError

MAP_BATCH_TOKENS = 20_000_000  # token slots per datasets.map call at max_length: see map_batch_rows
ROW_COLUMNS = ("input_ids", "labels", "length", "full_length", "supervised", "drop_reason", "note", "row")
TRAILING_USER_NOTE = "trailing user turn without an answer removed"
NO_SYSTEM_SLOT_NOTE = ("the template {template} has no system slot: the system prompt is dropped (XTuner refuses "
                       "it; use a template with a system slot, or put the instruction into the question)")
LONG_ROW_NOTE = "very long: only the head of its text was tokenised (the sample keeps its first max_length tokens)"


@dataclass
class PipelineSpec:
    """Everything needed to turn rows into samples, resolved once."""

    map_fn: MapFn
    template: str  # resolved template name, "" for none (pre-training)
    encoder: object
    system: str = ""
    max_length: int = 2048
    no_system_slot: bool = False  # an XTuner template without a system slot (minicpm): a system is dropped


@dataclass
class BuiltData:
    train: object  # datasets.Dataset: input_ids, labels, position_ids, length
    eval: object | None
    stats: DatasetStats
    template: str
    eval_stats: DatasetStats | None = field(default=None)


def resolve_map_fn(data, column_names, first_row: dict | None = None, *, stage: str = "sft") -> MapFn:
    """The configured map_fn, or the suggested one for ``auto``; checks the columns."""
    name = data.map_fn or "auto"
    if name == "auto":
        name = suggest_map_fn(column_names, first_row)
        if name is None:
            raise DataError(f"cannot tell the format of {data.path}: columns {', '.join(column_names)}.",
                            "Choose a map_fn (`python -m tunesmith list-map-fns`) or map columns by hand, "
                            "e.g. --columns input=question,output=answer.", field="data.map_fn")
        if stage == "pretrain" and "text" in column_names:
            name = "pretrain"
    columns = data.columns
    if name == COLUMNS and not columns:  # auto chose a plain mapping for generic columns
        from tunesmith.core.data.map_fns import suggest_columns

        columns = suggest_columns(column_names)
    map_fn = get_map_fn(name, columns if name == COLUMNS else None)
    check_columns(map_fn, column_names, data.path)
    return map_fn


def make_spec(data, tokenizer, column_names, first_row=None, *, model_name_or_path: str = "",
              stage: str = "sft") -> PipelineSpec:
    if stage in ("dpo", "orpo"):
        raise ConfigError(f"stage '{stage}' uses preference pairs.", "Use build_preference_data for DPO/ORPO data.")
    map_fn = resolve_map_fn(data, column_names, first_row, stage=stage)
    if stage == "pretrain" or map_fn.pretrain:
        template = ""
    else:
        template = resolve_template(data.template, model_name_or_path, tokenizer=tokenizer)
    if data.max_length < 1:
        raise ConfigError(f"max_length must be positive, got {data.max_length}.", "Use e.g. 2048.",
                          field="data.max_length")
    encoder = make_encoder(tokenizer, template, data.max_length)
    overhead = encoder.overhead(data.system)
    if data.max_length <= overhead:
        raise ConfigError(f"max_length {data.max_length} is smaller than the template's own overhead: "
                          f"{template or 'no template'} puts {overhead} tokens around every answer"
                          f"{' (with the system prompt)' if data.system else ''}, leaving no room for the answer.",
                          f"Raise max_length to well above {overhead} (512-2048 is usual).", field="data.max_length")
    no_slot = template not in ("", CHAT_TEMPLATE) and not get_template(template).system
    return PipelineSpec(map_fn, template, encoder, data.system or "", data.max_length, no_slot)


def row_conversation(row: dict, spec: PipelineSpec) -> tuple[list[dict], str]:
    """Row -> (conversation, note) or RowSkipped."""
    result = spec.map_fn.fn(row)  # not through MapFn.__call__: one frame less per row
    conversation = result.get("conversation") or []
    if not conversation:
        raise RowSkipped("no conversation after mapping")
    pretrain = spec.map_fn.pretrain
    for turn in conversation:
        if not text(turn.get("output")).strip():
            raise RowSkipped("empty text" if pretrain else "empty answer")
    if spec.template != "" and not pretrain:
        conversation = apply_system(conversation, spec.system)
    notes = [TRAILING_USER_NOTE] if result.get("trailing_user_turn") else []
    if spec.no_system_slot and any(turn.get("system") for turn in conversation):
        notes.append(NO_SYSTEM_SLOT_NOTE.format(template=spec.template))
    return conversation, "\n".join(notes)


@contextmanager
def gc_paused():
    """Python's cyclic garbage collector off for the block (back on after, if it was on).

    Why: encoding allocates a few small lists and tuples per row, and the collections they trigger walk
    every object the process holds (the imported libraries alone are hundreds of thousands): that was a
    quarter of the pipeline's time (bench/data_pipeline.py). What the block allocates holds no reference
    cycles, so no memory waits for a collection; reference counting frees it as before.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def encode_rows(batch: dict, indices: list[int], spec: PipelineSpec):
    """A batch of raw rows -> the ROW_COLUMNS as an Arrow table (dropped rows keep empty ids and a reason).

    Rows are mapped chunk by chunk as the encoder asks for them, so mapping overlaps tokenising too.
    """
    with gc_paused():
        return _encode_rows(batch, indices, spec)


def _encode_rows(batch: dict, indices: list[int], spec: PipelineSpec):
    n = len(indices)
    keys = list(batch)
    reasons, notes, good = [""] * n, [""] * n, []
    rows_of = zip(*(batch[k] for k in keys))

    def conversations():
        size = overlap_chunk(spec.max_length)
        for start in range(0, n, size):
            chunk = []
            for j in range(start, min(n, start + size)):
                row = dict(zip(keys, next(rows_of)))
                took_number()
                try:
                    conversation, notes[j] = row_conversation(row, spec)
                    if took_number():
                        notes[j] = "\n".join(filter(None, (notes[j], NUMBER_NOTE)))
                except RowSkipped as exc:
                    reasons[j] = exc.reason
                    continue
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    reasons[j] = f"row could not be mapped ({type(exc).__name__})"
                    continue
                good.append(j)
                chunk.append(conversation)
            if chunk:
                yield chunk

    parts, rows, done = [], [], 0
    for encoded in spec.encoder.encode_stream(conversations()):
        mapped, done = good[done:done + len(encoded)], done + len(encoded)
        lengths, kept = encoded.lengths, []
        for k, j in enumerate(mapped):
            if encoded.errors[k]:
                reasons[j] = encoded.errors[k]
            elif encoded.supervised[k] == 0:
                reasons[j] = ("no supervised token left after truncation to max_length"
                              if encoded.full_length[k] > lengths[k] else
                              "no supervised token (every answer has loss turned off)")
            else:
                kept.append(k)
                rows.append(j)
                if encoded.cut[k]:
                    notes[j] = "\n".join(filter(None, (notes[j], LONG_ROW_NOTE)))
        parts.append(encoded.take(kept))
    return row_table(EncodedBatch.concat(parts), rows, reasons, notes, indices)


def row_table(batch, rows: list[int], reasons: list[str], notes: list[str], indices: list[int]):
    """The ROW_COLUMNS as an Arrow table: sample ``k`` of ``batch`` in row ``rows[k]``, the other rows empty.

    Arrow arrays built from the flat token arrays whole, instead of a list per row: ``datasets`` writes a
    table as it is.
    """
    import pyarrow as pa

    n = len(indices)
    where = np.asarray(rows, np.int64)

    def per_row(values) -> np.ndarray:
        out = np.zeros(n, np.int64)
        out[where] = values
        return out

    length = per_row(batch.lengths)
    offsets = pa.array(starts_of(length).astype(np.int32))
    return pa.table({
        "input_ids": pa.ListArray.from_arrays(offsets, pa.array(batch.ids.astype(np.int32, copy=False))),
        "labels": pa.ListArray.from_arrays(offsets, pa.array(batch.labels.astype(np.int32, copy=False))),
        "length": pa.array(length), "full_length": pa.array(per_row(batch.full_length)),
        "supervised": pa.array(per_row(batch.supervised)), "drop_reason": pa.array(reasons, pa.string()),
        "note": pa.array(notes, pa.string()), "row": pa.array(indices, pa.int64())})


def collect_stats(encoded, spec: PipelineSpec, rows: int) -> DatasetStats:
    """Stats from the encoded columns (before dropping)."""
    stats = DatasetStats(rows=rows, max_length=spec.max_length, template=spec.template, map_fn=spec.map_fn.name)
    names = ("drop_reason", "note", "row", "length", "full_length", "supervised")
    if isinstance(encoded, dict):
        cols = encoded
    else:
        table = encoded.with_format("arrow", columns=list(names))[:]
        cols = {c: table.column(c).to_pylist() for c in names}
    for reason, note, row, length, full, sup in zip(cols["drop_reason"], cols["note"], cols["row"], cols["length"],
                                                    cols["full_length"], cols["supervised"]):
        if reason:
            stats.add_drop(reason, row)
            continue
        for one in note.split("\n") if note else ():
            stats.add_note(one, row)
        stats.kept += 1
        stats.lengths.append(length)
        stats.total_tokens += length
        stats.supervised_tokens += sup
        stats.truncated += full > length
    stats.sequences = stats.kept
    return stats


def check_rows_map(ds, map_fn: MapFn, *, path: str = "", limit: int = 20000) -> DatasetStats:
    """Map the first ``limit`` rows without tokenising; a DataError when none becomes a conversation.

    Lets the CLI and the GUI reject a dataset of empty answers or unanswered questions before the
    (slow) tokenizer is loaded.
    """
    spec = PipelineSpec(map_fn=map_fn, template="", encoder=None)
    n = min(ds.num_rows, limit)
    stats = DatasetStats(rows=n, map_fn=map_fn.name)
    for start in range(0, n, 1000):
        batch = ds[start:min(n, start + 1000)]
        keys = list(batch)
        for j in range(len(batch[keys[0]]) if keys else 0):
            try:
                row_conversation({k: batch[k][j] for k in keys}, spec)
                stats.kept += 1
            except RowSkipped as exc:
                stats.add_drop(exc.reason, start + j)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                stats.add_drop(f"row could not be mapped ({type(exc).__name__})", start + j)
    if stats.kept == 0:
        raise nothing_left_error(stats, path)
    return stats


def nothing_left_error(stats: DatasetStats, path: str) -> DataError:
    return DataError(f"{path}: no usable sample: all {stats.rows} row(s) were dropped: {stats.drop_summary()}.",
                     "Fix those rows, or choose the map_fn / template / max_length that fits the data "
                     "(`python -m tunesmith check-dataset` shows each step).")


_CODE_FILES = ("pipeline.py", "encode.py", "batch.py", "token_ids.py", "templates.py", "map_fns/__init__.py",
               "map_fns/base.py", "map_fns/formats.py", "map_fns/messages.py", "map_fns/agent.py", "map_fns/columns.py",
               "map_fns/suggest.py", "map_fns/registry.py")


def spec_fingerprint(ds, spec: PipelineSpec) -> str:
    """A cache key for the encoded dataset, cheaper than letting ``datasets`` pickle the tokenizer.

    It covers the input rows, every setting of the spec, the tokenizer (its serialised vocabulary,
    special tokens and chat template) and the source of the data modules, so editing any of them
    makes a fresh cache entry.
    """
    from pathlib import Path

    from datasets.fingerprint import Hasher

    tok = spec.encoder.tokenizer
    backend = getattr(tok, "backend_tokenizer", None)
    here = Path(__file__).resolve().parent
    parts = [getattr(ds, "_fingerprint", None), spec.map_fn.name, spec.map_fn.required, spec.map_fn.summary,
             spec.map_fn.pretrain, spec.template, spec.max_length, spec.system, type(tok).__name__,
             backend.to_str() if backend is not None else repr(tok), str(getattr(tok, "chat_template", "")),
             tok.bos_token_id, tok.eos_token_id, [(here / f).read_bytes() for f in _CODE_FILES]]
    return Hasher.hash(parts)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def effective_num_proc(requested, rows: int, cores: int | None = None) -> int:
    """The worker processes that cannot make tokenising slower than one process.

    One process already keeps the cores busy (the Rust tokenizer encodes a batch on several threads), so
    workers only pay off with cores to spare: none on 2 cores or fewer (measured: a second process made
    the pipeline slower there, bench/data_pipeline.py), at most half the cores otherwise, and at least
    1000 rows per worker.

    >>> effective_num_proc(4, 20000, cores=2), effective_num_proc(4, 20000, cores=8), effective_num_proc(8, 2500, 16)
    (1, 4, 2)
    """
    cores = usable_cores() if cores is None else cores
    if cores <= 2:
        return 1
    return max(1, min(int(requested or 1), rows // 1000 or 1, cores // 2))


def map_batch_rows(max_length: int, rows: int | None = None) -> int:
    """Rows per ``datasets.map`` call: large, because each call starts and drains the tokenising overlap
    (10,000 rows were 10 % faster than 1,000 on 2 cores, bench/data_pipeline.py), yet at most
    MAP_BATCH_TOKENS token slots, so long samples keep a batch's arrays under a gigabyte. With ``rows``,
    the calls share the rows evenly: a last call of a few hundred rows would be all start and drain.

    >>> map_batch_rows(2048), map_batch_rows(32768), map_batch_rows(128), map_batch_rows(2048, rows=20000)
    (9765, 1000, 10000, 6667)
    """
    most = max(1000, min(10000, MAP_BATCH_TOKENS // max(int(max_length), 1)))
    if not rows:
        return most
    calls = -(-rows // most)
    return -(-rows // calls)


def encode_dataset(ds, spec: PipelineSpec, *, num_proc: int = 1, path: str = ""):
    """Run :func:`encode_rows` over a Dataset; returns (samples, stats), a dropped row left empty."""
    num_proc = effective_num_proc(num_proc, ds.num_rows)
    encoded = ds.map(encode_rows, batched=True, batch_size=map_batch_rows(spec.max_length, ds.num_rows),
                     with_indices=True, fn_kwargs={"spec": spec}, remove_columns=ds.column_names,
                     num_proc=num_proc if num_proc > 1 else None, new_fingerprint=spec_fingerprint(ds, spec),
                     desc="Tokenising")
    stats = collect_stats(encoded, spec, ds.num_rows)
    if stats.kept == 0:
        raise nothing_left_error(stats, path)
    # a dropped row stays, empty (length 0), and packing skips it: filtering would rewrite the table
    return encoded.select_columns(["input_ids", "labels", "length"]), stats


def _split_eval(ds, eval_size: float, seed: int):
    if not eval_size:
        return ds, None
    n_eval = int(eval_size) if eval_size >= 1 else int(round(ds.num_rows * eval_size))
    if n_eval < 1 or n_eval >= ds.num_rows:
        raise ConfigError(f"eval_size {eval_size} gives {n_eval} evaluation rows out of {ds.num_rows}.",
                          "Use a fraction like 0.05 or a row count smaller than the dataset.", field="data.eval_size")
    parts = ds.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def build_sft_data(data, tokenizer, *, model_name_or_path: str = "", stage: str = "sft", seed: int = 42,
                   on_rows=None) -> BuiltData:
    """Load, map, template, tokenise, mask, drop, and (optionally) pack a dataset for SFT or pre-training.

    ``train``/``eval`` rows hold input_ids, labels, position_ids (restarting at 0 for every packed
    sample) and length.
    """
    from tunesmith.core.data.packing import pack_dataset, unpacked
    from tunesmith.core.data.sources import data_sources

    sources = data_sources(data)
    if len(sources) > 1:
        train, eval_ds, stats, eval_stats, template = _encode_sources(data, sources, tokenizer, model_name_or_path,
                                                                      stage, seed, on_rows)
    else:
        train, eval_ds, stats, eval_stats, template = _encode_one(data, tokenizer, model_name_or_path, stage, seed,
                                                                  on_rows)
    if data.pack:
        train = pack_dataset(train, data.max_length, shuffle=data.shuffle_before_pack, seed=seed)
        eval_ds = pack_dataset(eval_ds, data.max_length, shuffle=False) if eval_ds is not None else None
    else:
        train = unpacked(train)
        eval_ds = unpacked(eval_ds) if eval_ds is not None else None
    stats.packed, stats.sequences = bool(data.pack), train.num_rows
    if eval_stats is not None:
        eval_stats.packed, eval_stats.sequences = bool(data.pack), eval_ds.num_rows
    return BuiltData(train=train, eval=eval_ds, stats=stats, template=template, eval_stats=eval_stats)


def _encode_one(data, tokenizer, model_name_or_path, stage, seed, on_rows, *, eval_size=None):
    from tunesmith.core.data.loading import load_rows

    ds = load_rows(data.path, split=data.split)
    spec = make_spec(data, tokenizer, ds.column_names, ds[0], model_name_or_path=model_name_or_path, stage=stage)
    if data.max_samples and data.max_samples < ds.num_rows:
        ds = ds.shuffle(seed=seed).select(range(int(data.max_samples)))
    train_rows, eval_rows = _split_eval(ds, data.eval_size if eval_size is None else eval_size(ds.num_rows), seed)
    if on_rows is not None:  # the trainer shows "tokenising N rows" while a big file is encoded
        on_rows(ds.num_rows)
    train, stats = encode_dataset(train_rows, spec, num_proc=data.num_proc, path=data.path)
    eval_ds = eval_stats = None
    if eval_rows is not None:
        eval_ds, eval_stats = encode_dataset(eval_rows, spec, num_proc=data.num_proc, path=data.path)
    return train, eval_ds, stats, eval_stats, spec.template


def _encode_sources(data, sources, tokenizer, model_name_or_path, stage, seed, on_rows):
    """Each source mapped with its own map_fn (and split for evaluation on its own), then concatenated."""
    from datasets import concatenate_datasets

    from tunesmith.core.data.loading import load_rows
    from tunesmith.core.data.sources import merge_stats, source_config

    size = data.eval_size
    if size >= 1:  # a number of rows: shared out by the sources' sizes
        counts = [load_rows(s.path, split=data.split).num_rows for s in sources]
        counts = [min(c, s.max_rows) if s.max_rows else c for c, s in zip(counts, sources)]
        total = sum(counts) or 1
        wanted = iter([round(size * c / total) for c in counts])
    parts, templates = [], set()
    for source in sources:
        share = next(wanted) if size >= 1 else None
        parts.append(_encode_one(source_config(data, source), tokenizer, model_name_or_path, stage, seed, on_rows,
                                 eval_size=(lambda rows, n=share: n) if share is not None else None))
        templates.add(parts[-1][4])
    if len(templates) > 1:
        raise ConfigError(f"the sources need different templates ({', '.join(sorted(templates))}).",
                          "Use the same stage for every source (a pre-training text source has no template).",
                          field="data.sources")
    train = concatenate_datasets([p[0] for p in parts])
    stats = merge_stats([p[2] for p in parts], sources)
    evals = [(p[1], p[3], s) for p, s in zip(parts, sources) if p[1] is not None]
    eval_ds = concatenate_datasets([e[0] for e in evals]) if evals else None
    eval_stats = merge_stats([e[1] for e in evals], [e[2] for e in evals]) if evals else None
    return train, eval_ds, stats, eval_stats, parts[0][4]
