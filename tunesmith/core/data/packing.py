"""Packing whole samples into sequences of at most ``max_length`` tokens.

Unlike XTuner's Packer (which cuts a flat token stream into full chunks and so splits samples),
every sample stays whole inside one sequence, so it keeps its own context. Each packed row has
``position_ids`` that restart at 0 for every sample (transformers detects packed sequences from
these restarts and keeps samples apart in attention) and ``cu_seqlens``, the cumulative sample
boundaries that flash-attention's varlen kernels take. Samples are shuffled first (seeded), as
XTuner does, then placed best-fit among a bounded set of open sequences.

Everything after planning is Arrow / numpy work, so packing a million samples takes seconds.
"""

from __future__ import annotations

import bisect

import numpy as np

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


def _flat_columns(ds, flat: np.ndarray):
    import pyarrow as pa

    table = ds.with_format("arrow", columns=["input_ids", "labels"])[flat.tolist()]
    cols = {}
    for name in ("input_ids", "labels"):
        col = table.column(name).combine_chunks()
        cols[name] = col.flatten().cast(pa.int64())
    return cols


def assemble(ds, bins: list[list[int]], lengths: np.ndarray):
    """Build the packed ``datasets.Dataset`` from sample groups (each group becomes one row)."""
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

    sample_start = np.cumsum(sample_len) - sample_len
    positions = np.arange(total, dtype=np.int64) - np.repeat(sample_start, sample_len)

    bin_of_sample = np.repeat(np.arange(len(bins)), sizes)
    within_end = np.cumsum(sample_len) - row_offsets[:-1][bin_of_sample]
    cu = np.empty(len(flat) + len(bins), dtype=np.int64)
    zero_at = member_start + np.arange(len(bins))
    keep = np.ones(len(cu), dtype=bool)
    keep[zero_at] = False
    cu[zero_at] = 0
    cu[keep] = within_end
    cu_offsets = np.concatenate([[0], np.cumsum(sizes + 1)]).astype(np.int64)

    offsets = pa.array(row_offsets, pa.int64())

    def as_list(values):
        return pa.LargeListArray.from_arrays(offsets, values).cast(pa.list_(pa.int64()))

    table = pa.table({
        "input_ids": as_list(cols["input_ids"]),
        "labels": as_list(cols["labels"]),
        "position_ids": as_list(pa.array(positions)),
        "cu_seqlens": pa.LargeListArray.from_arrays(pa.array(cu_offsets), pa.array(cu)).cast(pa.list_(pa.int64())),
        "length": pa.array(bin_tokens, pa.int64()),
    })
    return datasets.Dataset(table)


def _lengths(ds) -> np.ndarray:
    column = ds.with_format("arrow", columns=["length"])[:].column("length")
    return column.to_numpy().astype(np.int64)


def pack_dataset(ds, max_length: int, *, shuffle: bool = True, seed: int = 42):
    """Tokenised samples (input_ids, labels, length) -> packed rows (+ position_ids, cu_seqlens)."""
    lengths = _lengths(ds)
    order = np.random.default_rng(seed).permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    return assemble(ds, plan_bins(lengths, order, max_length), lengths)


def unpacked(ds):
    """One sample per row, with the same columns as a packed dataset (position_ids 0..n-1)."""
    lengths = _lengths(ds)
    return assemble(ds, [[i] for i in range(len(lengths))], lengths)
