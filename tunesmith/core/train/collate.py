"""Batching for SFT/pretraining that keeps packed samples apart.

The data pipeline packs several samples into one sequence and gives ``position_ids`` that restart
at 0 for each sample. This collator passes those position ids and **no** 2-D attention mask: for
SDPA/eager, transformers then builds a block-diagonal causal mask from the position-id resets
(masking_utils.find_packed_sequence_indices), so a token never attends to another sample; for
flash_attention_2 the batch is flattened into one row and the resets drive the varlen kernel.

Two more details make a packed row train exactly like its samples one by one:
* the label at each sample's first token is -100, so the last token of one sample is not asked to
  predict the first token of the next (a lone sample never predicts its own first token either);
* padding continues the positions of the row's last sample and carries label -100: causal
  attention means no real token ever sees it;
* ``use_cache=False`` rides along: with a KV cache object present, transformers skips the
  packed-sequence detection (it only runs for training-style calls).

>>> import torch
>>> c = PackedCollator(pad_token_id=0)
>>> b = c([{"input_ids": [5, 6, 7, 8], "labels": [5, 6, 7, 8], "position_ids": [0, 1, 0, 1]},
...        {"input_ids": [9, 10], "labels": [-100, 10]}])
>>> b["labels"].tolist()
[[-100, 6, -100, 8], [-100, 10, -100, -100]]
>>> b["position_ids"].tolist()
[[0, 1, 0, 1], [0, 1, 2, 3]]
>>> int(b["num_tokens"])
6
"""

from __future__ import annotations

IGNORE_INDEX = -100


class PackedCollator:
    """Pad (or flatten) rows of input_ids / labels / position_ids into a batch."""

    def __init__(self, pad_token_id: int, *, flatten: bool = False, pad_to_multiple_of: int | None = None):
        self.pad_token_id = int(pad_token_id)
        self.flatten = flatten
        self.pad_to_multiple_of = pad_to_multiple_of

    def _row(self, feature: dict) -> tuple[list[int], list[int], list[int]]:
        ids = list(feature["input_ids"])
        labels = list(feature.get("labels") if feature.get("labels") is not None else ids)
        pos = feature.get("position_ids")
        pos = list(range(len(ids))) if pos is None else list(pos)
        if not (len(ids) == len(labels) == len(pos)):
            raise ValueError(f"input_ids/labels/position_ids lengths differ: {len(ids)}/{len(labels)}/{len(pos)}")
        labels = [IGNORE_INDEX if p == 0 else lab for p, lab in zip(pos, labels)]
        return ids, labels, pos

    def __call__(self, features: list[dict]) -> dict:
        import torch

        rows = [self._row(f) for f in features]
        num_tokens = sum(len(ids) for ids, _, _ in rows)
        if self.flatten:
            ids = [t for r in rows for t in r[0]]
            labels = [t for r in rows for t in r[1]]
            pos = [t for r in rows for t in r[2]]
            return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                    "position_ids": torch.tensor([pos]), "num_tokens": torch.tensor(num_tokens), "use_cache": False}
        width = max(len(r[0]) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            width = (width + m - 1) // m * m
        batch_ids, batch_labels, batch_pos = [], [], []
        for ids, labels, pos in rows:
            pad = width - len(ids)
            last = pos[-1] if pos else -1
            batch_ids.append(ids + [self.pad_token_id] * pad)
            batch_labels.append(labels + [IGNORE_INDEX] * pad)
            batch_pos.append(pos + list(range(last + 1, last + 1 + pad)))
        return {"input_ids": torch.tensor(batch_ids), "labels": torch.tensor(batch_labels),
                "position_ids": torch.tensor(batch_pos), "num_tokens": torch.tensor(num_tokens), "use_cache": False}


def padding_efficiency(batches) -> float:
    """Real tokens / all tokens over collated batches (1.0 = no padding at all)."""
    real = total = 0
    for batch in batches:
        real += int(batch["num_tokens"])
        total += batch["input_ids"].numel()
    return real / total if total else 0.0
