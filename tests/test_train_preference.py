"""DPO and ORPO through TRL on a tiny Llama, in this process (core.train.launcher.run_here)."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from core.train.launcher import run_here
from core.train.rundir import RunDir
from core.train.toy import preference_rows, toy_config, write_json


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_json(preference_rows(24), tmp_path_factory.mktemp("pref") / "pairs.json")


def _run(tmp_path, model_dir, data, stage: str, extra: list[str]):
    run_dir = tmp_path / stage
    cfg = toy_config(model_dir, data, run_dir, [f"method.stage={stage}", "training.max_steps=6",
                                                "training.save_steps=0", "data.max_length=64",
                                                "method.max_prompt_length=32", *extra])
    status = run_here(cfg)
    train = [m for m in RunDir(run_dir).read_metrics() if m["kind"] == "train"]
    return run_dir, status, train


def test_dpo_with_lora_prefers_the_chosen_answer(tmp_path, tiny_model_dir, pairs):
    run_dir, status, train = _run(tmp_path, tiny_model_dir, pairs, "dpo", ["training.learning_rate=0.01",
                                                                          "method.pref_beta=0.1"])
    assert status["state"] == "finished", status
    assert len(train) == 6
    # DPO starts at log(2) (adapter disabled == reference) and falls as chosen pulls away from rejected
    assert abs(train[0]["loss"] - 0.6931) < 0.01, train[0]
    assert train[-1]["loss"] < train[0]["loss"] - 0.05, [t["loss"] for t in train]
    assert train[-1]["rewards/margins"] > 0
    assert all(t["tokens_seen"] > 0 for t in train)
    adapter = load_file(RunDir(run_dir).latest_checkpoint() / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter) and not any(".ref." in k for k in adapter)


def test_orpo_full_finetune_lowers_its_loss(tmp_path, tiny_model_dir, pairs):
    run_dir, status, train = _run(tmp_path, tiny_model_dir, pairs, "orpo", ["method.finetuning=full",
                                                                           "training.learning_rate=0.002"])
    assert status["state"] == "finished", status
    assert len(train) == 6
    assert train[-1]["loss"] < train[0]["loss"] - 0.5, [t["loss"] for t in train]
    assert (RunDir(run_dir).latest_checkpoint() / "model.safetensors").is_file()
