"""Packed batches keep samples apart: the loss of a packed row equals the token-weighted losses of
its samples computed one by one (tiny Llama, fp32), for SDPA, eager and the flattened layout
flash-attention uses. Also the pure pieces: collator layout, DeepSpeed "auto" filling, Faults."""

from __future__ import annotations

import pytest
import torch

from tunesmith.core.config import RunConfig
from tunesmith.core.train.collate import IGNORE_INDEX, PackedCollator, padding_efficiency
from tunesmith.core.train.deepspeed import fill_auto, load_deepspeed_config, zero_stage
from tunesmith.core.train.trainer import Faults


def _samples(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for length, prompt in ((9, 3), (6, 2), (11, 4)):
        ids = torch.randint(5, 2000, (length,), generator=g).tolist()
        labels = [IGNORE_INDEX] * prompt + ids[prompt:]
        out.append((ids, labels))
    return out


def _loss_sum_and_count(model, batch):
    batch = {k: v for k, v in batch.items() if k != "num_tokens"}
    out = model(**batch)
    count = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    return out.loss.item() * count, count


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def model(request, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation=request.param)
    m.train()  # training mode: the path where a KV cache would otherwise hide the packing
    torch.manual_seed(0)
    for module in m.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return m


def test_packed_loss_equals_token_weighted_per_sample_losses(model):
    samples = _samples()
    collate = PackedCollator(pad_token_id=2)
    total = count = 0
    for ids, labels in samples:
        s, c = _loss_sum_and_count(model, collate([{"input_ids": ids, "labels": labels}]))
        total, count = total + s, count + c
    per_sample = total / count

    packed_row = {"input_ids": sum((s[0] for s in samples), []), "labels": sum((s[1] for s in samples), []),
                  "position_ids": sum((list(range(len(s[0]))) for s in samples), [])}
    with torch.no_grad():
        packed = model(**{k: v for k, v in collate([packed_row]).items() if k != "num_tokens"}).loss.item()
    assert packed == pytest.approx(per_sample, abs=1e-5)

    # a padded batch of two packed rows, and the flattened (varlen) layout, give the same loss
    short = {"input_ids": samples[0][0], "labels": samples[0][1], "position_ids": list(range(len(samples[0][0])))}
    two = {"input_ids": samples[1][0] + samples[2][0], "labels": samples[1][1] + samples[2][1],
           "position_ids": list(range(len(samples[1][0]))) + list(range(len(samples[2][0])))}
    for layout in (PackedCollator(2), PackedCollator(2, flatten=True)):
        batch = {k: v for k, v in layout([short, two]).items() if k != "num_tokens"}
        with torch.no_grad():
            assert model(**batch).loss.item() == pytest.approx(per_sample, abs=1e-5)

    # without the position-id restarts the samples would see each other: a different loss
    naive = dict(packed_row)
    naive.pop("position_ids")
    with torch.no_grad():
        mixed = model(**{k: v for k, v in collate([naive]).items() if k != "num_tokens"}).loss.item()
    assert abs(mixed - per_sample) > 1e-4


def test_collator_masks_sample_starts_and_padding_and_counts_real_tokens():
    batch = PackedCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7, 8, 9], "labels": [5, 6, 7, 8, 9], "position_ids": [0, 1, 2, 0, 1]},
        {"input_ids": [3, 4], "labels": [-100, 4]},
    ])
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9], [-100, 4, -100, -100, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]]
    assert batch["input_ids"].tolist()[1] == [3, 4, 0, 0, 0]
    assert "attention_mask" not in batch and batch["use_cache"] is False
    assert int(batch["num_tokens"]) == 7
    assert padding_efficiency([batch]) == pytest.approx(7 / 10)
    flat = PackedCollator(pad_token_id=0, flatten=True)([{"input_ids": [1, 2], "labels": [1, 2]},
                                                         {"input_ids": [3], "labels": [3]}])
    assert flat["input_ids"].tolist() == [[1, 2, 3]] and flat["position_ids"].tolist() == [[0, 1, 0]]


def test_deepspeed_presets_load_and_auto_batch_values_are_filled():
    cfg = RunConfig().with_overrides(["training.batch_size=2", "training.gradient_accumulation=8",
                                      "training.max_grad_norm=0.5"])
    for name, stage in (("zero1", 1), ("zero2", 2), ("zero2_offload", 2), ("zero3", 3), ("zero3_offload", 3)):
        ds = load_deepspeed_config(name)
        assert zero_stage(ds) == stage
        filled = fill_auto(ds, cfg, world_size=4, precision="fp32", hidden_size=64)
        assert (filled["train_micro_batch_size_per_gpu"], filled["gradient_accumulation_steps"],
                filled["train_batch_size"], filled["gradient_clipping"]) == (2, 8, 64, 0.5)
        assert filled["bf16"]["enabled"] is False and filled["fp16"]["enabled"] is False
        assert "auto" not in str(filled), filled
    assert load_deepspeed_config("deepspeed_zero2") == load_deepspeed_config("zero2")  # XTuner's names work too
    assert fill_auto(load_deepspeed_config("zero3"), cfg, world_size=1, precision="bf16")["bf16"]["enabled"] is True


def test_deepspeed_config_errors_name_the_problem(tmp_path):
    from tunesmith.core.errors import ConfigError

    with pytest.raises(ConfigError, match="was not found"):
        load_deepspeed_config("zero9")
    bad = tmp_path / "ds.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_deepspeed_config(str(bad))


def test_fault_switch_parsing():
    f = Faults.parse("oom_at_step:3,disk_full_at_save:4,sleep_per_step:0.25,unknown:1")
    assert (f.oom_at_step, f.disk_full_at_save, f.sleep_per_step, f.crash_at_step) == (3, 4, 0.25, 0)
    assert Faults.parse("") == Faults()
