"""A batch of encoded samples as flat numpy arrays: sample ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.

Why not a list of Python lists: assembling 20,000 samples token by token in Python, then having Arrow
convert the lists back, cost more than the tokenizer itself (bench/data_pipeline.py). Flat arrays are
cut, masked, truncated and handed to Arrow whole, so the pipeline's cost stays close to tokenising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np

IGNORE_INDEX = -100


def flat_ids(seqs: list) -> tuple[np.ndarray, np.ndarray]:
    """(all ids in one int32 array, the length of each sequence).

    >>> ids, lens = flat_ids([[5, 6], [], [7]])
    >>> ids.tolist(), lens.tolist()
    ([5, 6, 7], [2, 0, 1])
    """
    lens = np.fromiter(map(len, seqs), np.int64, len(seqs))
    return np.fromiter(chain.from_iterable(seqs), np.int32, int(lens.sum())), lens


def starts_of(lengths: np.ndarray) -> np.ndarray:
    """Where each run of ``lengths`` starts in the flat array, with the total at the end.

    >>> starts_of(np.array([2, 0, 3])).tolist()
    [0, 2, 2, 5]
    """
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def run_index(offsets: np.ndarray, index) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the runs ``offsets[i]:offsets[i + 1]`` for ``i`` in ``index``, end to end, and their
    lengths: one gather index for every column that shares the offsets.

    >>> where, lens = run_index(np.array([0, 3, 5]), [1, 0])
    >>> np.arange(10, 15)[where].tolist(), lens.tolist()
    ([13, 14, 10, 11, 12], [2, 3])
    """
    index = np.asarray(index, np.int64)
    starts = offsets[:-1][index]
    lens = offsets[1:][index] - starts
    return counting_runs(starts, lens, np.int32 if len(offsets) and offsets[-1] < 2**31 else np.int64), lens


def counting_runs(starts: np.ndarray, lens: np.ndarray, dtype=np.int64) -> np.ndarray:
    """``starts[k], starts[k] + 1, ...`` (``lens[k]`` numbers) for each k, end to end.

    Why not ``np.repeat(...) + np.arange(...)``: that takes three arrays as long as the result, and fresh
    memory costs more than the arithmetic (page faults: packing 20,000 samples spent half its time there,
    bench/data_pipeline.py); this writes one array and sums it in place.

    >>> counting_runs(np.array([7, 0, 3]), np.array([2, 0, 3])).tolist()
    [7, 8, 3, 4, 5]
    """
    keep = lens > 0
    starts, lens = starts[keep], lens[keep]
    out = np.ones(int(lens.sum()), dtype)
    if len(out):
        ends = np.cumsum(lens)
        out[0] = starts[0]
        out[ends[:-1]] = starts[1:] - (starts[:-1] + lens[:-1] - 1)  # the jump from one run's end to the next start
        np.cumsum(out, out=out)
    return out


@dataclass
class EncodedBatch:
    """Samples' input_ids and labels, flat; per sample: tokens before truncation, supervised tokens kept,
    whether only the head of its text was tokenised, and an error that drops it ("" for none)."""

    ids: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray  # len(self) + 1
    full_length: np.ndarray
    supervised: np.ndarray
    cut: np.ndarray = None
    errors: list[str] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.offsets) - 1
        if self.cut is None:
            self.cut = np.zeros(n, bool)
        if not self.errors:
            self.errors = [""] * n

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def truncated(cls, ids: np.ndarray, labels: np.ndarray, full_length: np.ndarray, max_length: int) -> EncodedBatch:
        """Samples laid end to end (``full_length`` tokens each), each cut to its first ``max_length``.

        >>> b = EncodedBatch.truncated(np.arange(5), np.array([-100, 1, 2, -100, 4]), np.array([3, 2]), 2)
        >>> b.ids.tolist(), b.offsets.tolist(), b.supervised.tolist()
        ([0, 1, 3, 4], [0, 2, 4], [1, 1])
        """
        full_length = np.asarray(full_length, np.int64)
        if len(full_length) and full_length.max() > max_length:
            sample = np.repeat(np.arange(len(full_length)), full_length)
            keep = np.arange(len(ids)) - starts_of(full_length)[:-1][sample] < max_length
            ids, labels = ids[keep], labels[keep]
        offsets = starts_of(np.minimum(full_length, max_length))
        learned = starts_of(labels != IGNORE_INDEX)
        return cls(ids, labels, offsets, full_length, learned[offsets[1:]] - learned[offsets[:-1]])

    @classmethod
    def from_lists(cls, samples: list) -> EncodedBatch:
        """From per-sample objects with ``input_ids``, ``labels``, ``full_length``, ``supervised``, ``cut``,
        ``error`` (the encoders that work sample by sample)."""
        ids, lens = flat_ids([s.input_ids for s in samples])
        labels, _ = flat_ids([s.labels for s in samples])
        n = len(samples)
        return cls(ids, labels, starts_of(lens), np.fromiter((s.full_length for s in samples), np.int64, n),
                   np.fromiter((s.supervised for s in samples), np.int64, n),
                   np.fromiter((s.cut for s in samples), bool, n), [s.error for s in samples])

    def take(self, index) -> EncodedBatch:
        """The samples at ``index``, in that order.

        >>> b = EncodedBatch.truncated(np.arange(5), np.arange(5), np.array([3, 2]), 8)
        >>> b.take([1, 0]).ids.tolist()
        [3, 4, 0, 1, 2]
        """
        index = np.asarray(index, np.int64)
        if len(index) == len(self) and (index == np.arange(len(self))).all():
            return self
        where, lens = run_index(self.offsets, index)
        return EncodedBatch(self.ids[where], self.labels[where], starts_of(lens), self.full_length[index],
                            self.supervised[index], self.cut[index], [self.errors[i] for i in index.tolist()])

    @classmethod
    def concat(cls, batches: list[EncodedBatch]) -> EncodedBatch:
        if len(batches) == 1:
            return batches[0]
        if not batches:
            none = np.zeros(0, np.int64)
            return cls(none.astype(np.int32), none.astype(np.int32), np.zeros(1, np.int64), none, none)
        lens = np.concatenate([b.lengths for b in batches])
        return cls(np.concatenate([b.ids for b in batches]), np.concatenate([b.labels for b in batches]),
                   starts_of(lens), np.concatenate([b.full_length for b in batches]),
                   np.concatenate([b.supervised for b in batches]), np.concatenate([b.cut for b in batches]),
                   [e for b in batches for e in b.errors])

    def sample(self, i: int) -> tuple[list[int], list[int]]:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.ids[a:b].tolist(), self.labels[a:b].tolist()
