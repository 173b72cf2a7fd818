"""SFT / pretraining / QLoRA trained in this process (tunesmith.core.train.launcher.run_here) on a tiny Llama.

One LoRA run is shared by several assertions (module fixture); the resume test compares a run
stopped at step 3 and resumed with an uninterrupted run of the same seed.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.core.train.launcher import run_here
from tunesmith.core.train.rundir import RunDir
from toy import pretrain_rows, sft_rows, toy_config, write_json

# In-process training (tens of seconds each on CPU): the `slow` tier (make test), not make test-fast.
pytestmark = pytest.mark.slow


METRIC_FIELDS = ("step", "total_steps", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_s",
                 "tokens_seen", "samples_per_s", "peak_mem_mb", "mem_kind", "elapsed_s", "eta_s")


def train_losses(run_dir) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in RunDir(run_dir).read_metrics() if m.get("kind") == "train"}


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_json(sft_rows(48), tmp_path_factory.mktemp("data") / "toy.json")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, toy_data):
    """One LoRA run; the trained in-memory model is kept to compare its frozen weights with the file."""
    import tunesmith.core.train.workflow as workflow

    captured = {}
    original = workflow.run_trainer

    def keep_trainer(trainer, *args, **kwargs):
        outcome = original(trainer, *args, **kwargs)
        captured["model"] = trainer.model
        return outcome

    run_dir = tmp_path_factory.mktemp("runs") / "lora"
    cfg = toy_config(tiny_model_dir, toy_data, run_dir, ["data.eval_size=4", "training.max_steps=8",
                                                        "training.save_steps=4"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(workflow, "run_trainer", keep_trainer)
        import tunesmith.core.train.sft as sft

        mp.setattr(sft, "run_trainer", keep_trainer)
        status = run_here(cfg)
    return run_dir, status, captured.get("model")


def test_lora_run_finishes_and_loss_falls(lora_run):
    run_dir, status, _ = lora_run
    assert status["state"] == "finished", status
    assert status["step"] == status["total_steps"] == 8
    losses = train_losses(run_dir)
    assert sorted(losses) == list(range(1, 9))
    assert losses[8] < losses[1] - 0.2, losses


def test_metrics_lines_have_every_contract_field(lora_run):
    run_dir, _, _ = lora_run
    records = RunDir(run_dir).read_metrics()
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    for record in records:
        assert set(METRIC_FIELDS) <= set(record), set(METRIC_FIELDS) - set(record)
    assert all(r["mem_kind"] == "rss" and r["peak_mem_mb"] > 50 for r in train)
    assert all(r["tokens_per_s"] > 0 and r["samples_per_s"] > 0 and r["grad_norm"] > 0 for r in train)
    seen = [r["tokens_seen"] for r in train]
    assert seen == sorted(seen) and seen[0] > 0
    assert train[-1]["eta_s"] == 0 and train[-1]["total_steps"] == 8
    # eval loss from the held-out split at each save (steps 4 and 8), falling with training
    assert [r["step"] for r in evals] == [4, 8]
    assert evals[1]["eval_loss"] < evals[0]["eval_loss"]


def test_lora_checkpoints_hold_only_the_adapter_and_the_config(lora_run):
    run_dir, _, _ = lora_run
    ckpts = RunDir(run_dir).list_checkpoints()
    assert [c.name for c in ckpts] == ["checkpoint-4", "checkpoint-8"]
    final = ckpts[-1]
    assert (final / "config.yaml").is_file() and (final / "adapter_config.json").is_file()
    assert not (final / "model.safetensors").exists()
    adapter = load_file(final / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert sum(t.numel() for t in adapter.values()) < 100_000  # r=8 adapters, not the 6M-parameter model
    assert not (RunDir(run_dir).staging_dir / "checkpoint-8").exists()


def test_lora_leaves_base_weights_bit_identical_and_changes_the_adapter(lora_run, tiny_model_dir):
    _, _, model = lora_run
    original = load_file(tiny_model_dir / "model.safetensors")
    trained = {k.replace(".base_layer", ""): v for k, v in model.get_base_model().state_dict().items()
               if "lora_" not in k}
    assert trained.keys() == original.keys()
    for key, before in original.items():
        assert torch.equal(before, trained[key]), key
    lora_b = [v for k, v in model.state_dict().items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: training moved it


def test_samples_written_before_training_and_at_each_save(lora_run):
    run_dir, _, _ = lora_run
    samples = RunDir(run_dir).read_samples()
    assert [(s["step"], s["when"]) for s in samples] == [(0, "before"), (4, "save"), (8, "save")]
    assert all(s["prompt"] == "Who are you?" and isinstance(s["answer"], str) for s in samples)


def test_status_json_reports_the_finished_run(lora_run):
    run_dir, status, _ = lora_run
    assert status["latest_checkpoint"] == "checkpoint-8" and status["error"] is None
    assert status["dataset"]["train_rows"] > 0
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"


def test_stopped_run_resumes_to_the_same_loss_curve(tmp_path, tiny_model_dir, toy_data, lora_run, monkeypatch):
    reference = train_losses(lora_run[0])
    overrides = ["data.eval_size=4", "training.max_steps=8", "training.save_steps=4"]
    run_dir = tmp_path / "stopped"
    monkeypatch.setenv("TUNESMITH_FAULT", "stop_at_step:3")  # as if Stop was pressed during step 3
    status = run_here(toy_config(tiny_model_dir, toy_data, run_dir, overrides))
    assert status["state"] == "stopped" and status["latest_checkpoint"] == "checkpoint-3", status
    monkeypatch.delenv("TUNESMITH_FAULT")
    status = run_here(toy_config(tiny_model_dir, toy_data, run_dir, overrides + ["training.resume_from=latest"]))
    assert status["state"] == "finished", status
    resumed = train_losses(run_dir)
    assert sorted(resumed) == list(range(1, 9))
    for step in range(1, 9):
        assert abs(resumed[step] - reference[step]) < 1e-4, (step, resumed[step], reference[step])


def test_full_finetune_pretrain_stage_learns_plain_text(tmp_path, tiny_model_dir):
    data = write_json(pretrain_rows(40), tmp_path / "text.json")
    cfg = toy_config(tiny_model_dir, data, tmp_path / "pre", ["method.stage=pretrain", "method.finetuning=full",
                                                              "training.learning_rate=0.002", "data.pack=true"])
    status = run_here(cfg)
    assert status["state"] == "finished", status
    losses = train_losses(tmp_path / "pre")
    assert losses[6] < losses[1] - 1.0, losses
    final = RunDir(tmp_path / "pre").latest_checkpoint()
    assert (final / "model.safetensors").is_file()  # full fine-tuning saves the whole model
    before = load_file(tiny_model_dir / "model.safetensors")["model.embed_tokens.weight"]
    after = load_file(final / "model.safetensors")["model.embed_tokens.weight"]
    assert not torch.equal(before, after)


def test_qlora_trains_on_cpu(tmp_path, tiny_model_dir, toy_data):
    pytest.importorskip("bitsandbytes")
    cfg = toy_config(tiny_model_dir, toy_data, tmp_path / "q", ["method.finetuning=qlora", "training.max_steps=4",
                                                                "training.save_steps=0",
                                                                "model.gradient_checkpointing=true"])
    status = run_here(cfg)
    assert status["state"] == "finished", status
    losses = train_losses(tmp_path / "q")
    assert losses[4] < losses[1], losses
    adapter = load_file(RunDir(tmp_path / "q").latest_checkpoint() / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)


def test_dora_with_gradient_checkpointing_trains_a_magnitude_vector(tmp_path, tiny_model_dir, toy_data):
    cfg = toy_config(tiny_model_dir, toy_data, tmp_path / "dora", ["lora.use_dora=true", "training.max_steps=3",
                                                                   "training.save_steps=0",
                                                                   "model.gradient_checkpointing=true"])
    status = run_here(cfg)
    assert status["state"] == "finished", status
    adapter = load_file(RunDir(tmp_path / "dora").latest_checkpoint() / "adapter_model.safetensors")
    assert any("lora_magnitude_vector" in k for k in adapter)
