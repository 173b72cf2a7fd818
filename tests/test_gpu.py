"""GPU paths: the attention choice (runs everywhere), then training and kernels that need CUDA.

Tests marked ``gpu`` skip on a machine without CUDA (see conftest.py); run them with
``pytest -m gpu`` where a GPU is lent and record what they print in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tunesmith.core import preflight
from tunesmith.core.config import RunConfig
from tunesmith.core.train import models
from tunesmith.core.train.launcher import run_here
from tunesmith.core.train.rundir import RunDir
from toy import sft_rows, toy_config, write_json

needs_flash_attn = pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None,
                                      reason="flash-attn is not installed (requirements-gpu.txt)")


def _cfg(attn: str) -> RunConfig:
    return RunConfig().with_overrides(["model.name_or_path=x", "data.path=y", f"model.attn_implementation={attn}"])


@pytest.mark.parametrize("cuda,flash,expected", [(False, False, "sdpa"), (False, True, "sdpa"),
                                                 (True, False, "sdpa"), (True, True, "flash_attention_2")])
def test_auto_attention_uses_flash_attention_only_with_a_gpu_and_the_package(monkeypatch, cuda, flash, expected):
    monkeypatch.setattr(models, "has_cuda", lambda: cuda)
    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name, *a: (object() if flash else None) if name == "flash_attn" else real(name, *a))
    assert models.resolve_attn(_cfg("auto")) == expected
    assert models.resolve_attn(_cfg("eager")) == "eager"  # an explicit choice is kept


def test_asking_for_flash_attention_without_a_gpu_is_refused_with_the_fallback_named():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    problems = [p for p in preflight.problems(_cfg("flash_attention_2"), check_paths=False)
                if p.field == "model.attn_implementation"]
    assert problems and "auto" in problems[0].fix


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_json(sft_rows(48), tmp_path_factory.mktemp("gpu-data") / "toy.json")


def _losses(run_dir) -> list[float]:
    return [m["loss"] for m in RunDir(run_dir).read_metrics() if m.get("kind") == "train"]


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_lora_and_qlora_train_in_bf16_on_the_gpu(tmp_path, tiny_model_dir, toy_data, method):
    run_dir = tmp_path / method
    status = run_here(toy_config(tiny_model_dir, toy_data, run_dir, [
        f"method.finetuning={method}", "training.precision=bf16", "model.attn_implementation=auto",
        "training.max_steps=12"]))
    assert status["state"] == "finished", status
    losses = _losses(run_dir)
    assert losses[-1] < losses[0], losses
    metrics = [m for m in RunDir(run_dir).read_metrics() if m.get("kind") == "train"]
    assert metrics[-1]["mem_kind"] == "gpu" and metrics[-1]["peak_mem_mb"] > 0


@pytest.mark.gpu
def test_measured_peak_is_within_the_estimate(tmp_path, embedded_model_dir, toy_data):
    """QLoRA on the real SmolLM2-135M: torch's peak allocation against the estimate's 'allocated' part."""
    from tunesmith.core.memory import estimate_memory

    cfg = toy_config(embedded_model_dir, toy_data, tmp_path / "peak", [
        "method.finetuning=qlora", "training.precision=bf16", "model.gradient_checkpointing=true",
        "lora.r=64", "data.max_length=512", "data.pack=true", "training.batch_size=2", "training.max_steps=6"])
    estimate = estimate_memory(cfg)
    status = run_here(cfg)
    assert status["state"] == "finished", status
    measured_mb = max(m["peak_mem_mb"] for m in RunDir(tmp_path / "peak").read_metrics() if m.get("kind") == "train")
    estimated_mb = estimate.allocated / 2**20
    ratio = measured_mb / estimated_mb
    print(f"\nSmolLM2-135M QLoRA r64 bs2x512 GC bf16: measured peak {measured_mb:.0f} MiB, "
          f"estimated {estimated_mb:.0f} MiB allocated ({estimate.total_gb:.2f} GB with context), ratio {ratio:.2f}")
    assert 0.5 < ratio < 1.5, "the memory estimate is off by more than 50%: recalibrate tunesmith.core.memory.PARAMS"


@pytest.mark.gpu
@needs_flash_attn
def test_flash_attention_keeps_packed_samples_apart(tiny_model_dir):
    """The flattened (varlen) layout under flash_attention_2 gives each sample's own loss (bf16 tolerance)."""
    from transformers import AutoModelForCausalLM

    from tunesmith.core.train.collate import IGNORE_INDEX, PackedCollator

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16,
                                                 attn_implementation="flash_attention_2").cuda().eval()
    g = torch.Generator().manual_seed(0)
    samples = []
    for length, prompt in ((9, 3), (6, 2), (11, 4)):
        ids = torch.randint(5, 2000, (length,), generator=g).tolist()
        samples.append({"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:],
                        "position_ids": list(range(length))})

    def loss(batch):
        batch = {k: v.cuda() for k, v in batch.items() if k != "num_tokens"}
        count = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        with torch.no_grad():
            return model(**batch).loss.float().item() * count, count

    one_by_one = [loss(PackedCollator(2)([s])) for s in samples]
    per_sample = sum(s for s, _ in one_by_one) / sum(c for _, c in one_by_one)
    packed = {k: sum((s[k] for s in samples), []) for k in ("input_ids", "labels", "position_ids")}
    total, count = loss(PackedCollator(2, flatten=True)([packed]))
    assert total / count == pytest.approx(per_sample, abs=2e-2)
