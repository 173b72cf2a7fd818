"""Packing whole samples into sequences of at most ``max_length`` tokens.

Unlike XTuner's Packer (which cuts a flat token stream into full chunks and so splits samples),
every sample stays whole inside one sequence, so it keeps its own context. Each packed row has
``position_ids`` that restart at 0 for every sample (transformers detects packed sequences from
these restarts and keeps samples apart in attention; flash-attention's varlen kernels get their
sample boundaries from them too). Samples are shuffled first (seeded), as
XTuner does, then placed best-fit among a bounded set of open sequences.

Everything after planning is Arrow / numpy work, so packing a million samples takes seconds.
"""

from __future__ import annotations

import bisect

import numpy as np

from tunesmith.core.data.batch import counting_runs, run_index

MAX_OPEN_BINS = 128


def plan_bins(lengths, order, max_length: int, max_open: int = MAX_OPEN_BINS) -> list[list[int]]:
    """Group sample indices into sequences of total length <= max_length (best fit, bounded).

    >>> plan_bins([5, 3, 2, 4], [0, 1, 2, 3], 8)
    [[0, 1], [2, 3]]
    >>> plan_bins([6, 6, 2, 2], [0, 1, 2, 3], 8)
    [[0, 2], [1, 3]]
    """
    bins: list[list[int]] = []
    room: list[int] = []  # room left in each bin
    open_keys: list[tuple[int, int]] = []  # sorted (room, bin id) of bins still taking samples
    for i in order:
        length = int(lengths[i])
        if length > max_length:
            raise ValueError(f"sample {i} has {length} tokens, more than max_length {max_length}")
        pos = bisect.bisect_left(open_keys, (length, -1))
        if pos < len(open_keys):  # the tightest bin that still fits
            r, b = open_keys.pop(pos)
            bins[b].append(i)
            room[b] = r - length
            if room[b] > 0:
                bisect.insort(open_keys, (room[b], b))
        else:
            b = len(bins)
            bins.append([i])
            room.append(max_length - length)
            if room[b] > 0:
                bisect.insort(open_keys, (room[b], b))
                if len(open_keys) > max_open:
                    open_keys.pop(0)  # close the fullest bin
    return bins


def _flat_columns(ds, flat: np.ndarray) -> dict:
    """input_ids and labels of the samples ``flat``, in that order, each as one flat array.

    Gathered from the Arrow buffers with numpy: indexing the Dataset with a list gathers row by row in
    Python, and Arrow's take on list columns cost a quarter second for 20,000 samples.
    """
    table = ds.with_format("arrow", columns=["input_ids", "labels"])[:]
    ids, labels = table.column("input_ids").combine_chunks(), table.column("labels").combine_chunks()
    id_offsets, label_offsets = ids.offsets.to_numpy().astype(np.int64), labels.offsets.to_numpy().astype(np.int64)
    where, _ = run_index(id_offsets, flat)
    label_where = where if np.array_equal(id_offsets, label_offsets) else run_index(label_offsets, flat)[0]
    return {"input_ids": ids.values.to_numpy()[where], "labels": labels.values.to_numpy()[label_where]}


def assemble(ds, bins: list[list[int]], lengths: np.ndarray, fingerprint: str | None = None):
    """Build the packed ``datasets.Dataset`` from sample groups (each group becomes one row).

    ``fingerprint`` names the result for ``datasets``; without one it hashes the whole table (a third
    of a second for 20,000 samples, bench/data_pipeline.py).
    """
    import datasets
    import pyarrow as pa

    sizes = np.fromiter((len(b) for b in bins), dtype=np.int64, count=len(bins))
    flat = np.fromiter((i for b in bins for i in b), dtype=np.int64, count=int(sizes.sum()))
    sample_len = lengths[flat].astype(np.int64)
    total = int(sample_len.sum())
    cols = _flat_columns(ds, flat)

    member_start = np.cumsum(sizes) - sizes
    bin_tokens = np.add.reduceat(sample_len, member_start) if len(bins) else np.zeros(0, np.int64)
    row_offsets = np.concatenate([[0], np.cumsum(bin_tokens)]).astype(np.int64)

    index = np.int32 if total < 2**31 else np.int64  # half the bytes to write for all but huge datasets
    positions = counting_runs(np.zeros(len(sample_len), np.int64), sample_len, index)

    offsets = pa.array(row_offsets.astype(np.int32)) if total < 2**31 else pa.array(row_offsets)
    make_list = pa.ListArray if total < 2**31 else pa.LargeListArray

    def as_list(values):  # int32 ids: the collator turns rows into int64 tensors; half the bytes to move
        return make_list.from_arrays(offsets, pa.array(values.astype(np.int32, copy=False)))

    table = pa.table({
        "input_ids": as_list(cols["input_ids"]),
        "labels": as_list(cols["labels"]),
        "position_ids": as_list(positions),
        "length": pa.array(bin_tokens, pa.int64()),
    })
    return datasets.Dataset(table, fingerprint=fingerprint)


def _lengths(ds) -> np.ndarray:
    column = ds.with_format("arrow", columns=["length"])[:].column("length")
    return column.to_numpy().astype(np.int64)


def _samples(lengths: np.ndarray) -> np.ndarray:
    """The rows that hold a sample: the pipeline leaves a dropped row in place, empty (length 0)."""
    return np.flatnonzero(lengths > 0)


def _fingerprint(ds, *params) -> str | None:
    from datasets.fingerprint import Hasher

    source = getattr(ds, "_fingerprint", None)
    return Hasher.hash([source, *params]) if source else None


def pack_dataset(ds, max_length: int, *, shuffle: bool = True, seed: int = 42):
    """Tokenised samples (input_ids, labels, length) -> packed rows (+ position_ids)."""
    lengths = _lengths(ds)
    order = _samples(lengths)
    order = order[np.random.default_rng(seed).permutation(len(order))] if shuffle else order
    return assemble(ds, plan_bins(lengths, order, max_length), lengths,
                    _fingerprint(ds, "pack", max_length, shuffle, seed))


def unpacked(ds):
    """One sample per row, with the same columns as a packed dataset (position_ids 0..n-1)."""
    lengths = _lengths(ds)
    return assemble(ds, [[i] for i in _samples(lengths).tolist()], lengths, _fingerprint(ds, "unpacked"))
