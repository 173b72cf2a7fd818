"""Faults inside the trainer, caused for real or by the TUNESMITH_FAULT switch, in this process.

Each must end with status.json saying "failed" in plain words with advice, and must never cost
the user a checkpoint they already had.
"""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file

from tunesmith.core.train.launcher import run_here
from tunesmith.core.train.rundir import RunDir
from toy import sft_rows, toy_config, write_json

# In-process training (tens of seconds each on CPU): the `slow` tier (make test), not make test-fast.
pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_json(sft_rows(32), tmp_path_factory.mktemp("data") / "toy.json")


def test_out_of_memory_fails_with_advice_and_keeps_the_latest_checkpoint(tmp_path, tiny_model_dir, toy_data,
                                                                          monkeypatch):
    monkeypatch.setenv("TUNESMITH_FAULT", "oom_at_step:3")
    run_dir = tmp_path / "oom"
    status = run_here(toy_config(tiny_model_dir, toy_data, run_dir, ["training.save_steps=2"]))
    assert status["state"] == "failed" and status["kind"] == "oom"
    assert status["error"].startswith("Out of memory")
    for advice in ("QLoRA", "batch_size", "gradient_checkpointing", "max_length", "checkpoint-2"):
        assert advice in status["advice"], advice
    assert status["latest_checkpoint"] == "checkpoint-2"
    assert [c.name for c in RunDir(run_dir).list_checkpoints()] == ["checkpoint-2"]
    assert "Traceback" not in status["error"]


def test_disk_full_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, tiny_model_dir, toy_data,
                                                                       monkeypatch):
    monkeypatch.setenv("TUNESMITH_FAULT", "disk_full_at_save:4")
    run_dir = tmp_path / "full"
    status = run_here(toy_config(tiny_model_dir, toy_data, run_dir, ["training.save_steps=2"]))
    assert status["state"] == "failed" and status["kind"] == "disk_full", status
    assert "disk is full" in status["error"] and "checkpoint-2" in status["error"] and "intact" in status["error"]
    assert "Free disk space" in status["advice"]
    rd = RunDir(run_dir)
    assert [c.name for c in rd.list_checkpoints()] == ["checkpoint-2"]
    assert not (rd.checkpoints_dir / "checkpoint-4").exists()
    assert not (rd.staging_dir / "checkpoint-4").exists()  # the half-written one was removed, freeing space
    adapter = load_file(rd.checkpoints_dir / "checkpoint-2" / "adapter_model.safetensors")
    assert adapter
    # and the run can go on from it once there is space again
    monkeypatch.delenv("TUNESMITH_FAULT")
    status = run_here(toy_config(tiny_model_dir, toy_data, run_dir, ["training.save_steps=2",
                                                                     "training.resume_from=latest"]))
    assert status["state"] == "finished" and status["latest_checkpoint"] == "checkpoint-6"


def test_resume_picks_the_newest_complete_checkpoint(tmp_path, tiny_model_dir, toy_data):
    run_dir = tmp_path / "partial"
    status = run_here(toy_config(tiny_model_dir, toy_data, run_dir, ["training.save_steps=2",
                                                                     "training.max_steps=4"]))
    assert status["state"] == "finished"
    rd = RunDir(run_dir)
    # what a crash mid-save could leave: a staged copy and a folder without trainer_state.json
    shutil.copytree(rd.checkpoints_dir / "checkpoint-4", rd.staging_dir / "checkpoint-6")
    shutil.copytree(rd.checkpoints_dir / "checkpoint-4", rd.checkpoints_dir / "checkpoint-5")
    (rd.checkpoints_dir / "checkpoint-5" / "trainer_state.json").unlink()
    assert rd.latest_checkpoint().name == "checkpoint-4"
    assert rd.resolve_checkpoint("latest").name == "checkpoint-4"
    with pytest.raises(Exception, match="incomplete"):
        rd.resolve_checkpoint("checkpoint-5")


def test_bad_data_fails_in_plain_words(tmp_path, tiny_model_dir):
    data = write_json([{"input": "hi", "output": ""}, {"input": "yo", "output": ""}], tmp_path / "empty.json")
    status = run_here(toy_config(tiny_model_dir, data, tmp_path / "bad"))
    assert status["state"] == "failed" and status["kind"] == "bad_data", status
    assert "empty.json" in status["error"] or "answer" in status["error"]
    assert status["advice"] and "Traceback" not in status["error"]


def test_missing_package_fails_naming_it(tmp_path, tiny_model_dir, toy_data):
    """A remote-code model that imports a package this machine lacks (trust_remote_code on)."""
    model_dir = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "modeling_custom.py").write_text(
        "import tunesmith_missing_pkg\nfrom transformers import LlamaForCausalLM\n"
        "class CustomForCausalLM(LlamaForCausalLM):\n    pass\n")
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (model_dir / "config.json").write_text(json.dumps(config))
    status = run_here(toy_config(model_dir, toy_data, tmp_path / "missing", ["model.trust_remote_code=true"]))
    assert status["state"] == "failed" and status["kind"] == "missing_package", status
    assert "tunesmith_missing_pkg" in status["error"] and "pip install tunesmith_missing_pkg" in status["advice"]
    assert status["log"], "the relevant log lines are kept"
