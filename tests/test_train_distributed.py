"""Real subprocess launches with ``torchrun --nproc_per_node 2`` on CPU: DDP (LoRA, full), DeepSpeed
ZeRO-2 and ZeRO-3 (LoRA), and Stop on a 2-process run.

Besides "it trains", these check that the data really is split between the ranks (the epoch
advances at twice the single-process rate: each rank sees half the sequences) and that only
rank 0 writes (one metrics line and one sample per step, one progress line per step in the log).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import psutil
import pytest
import torch
from safetensors.torch import load_file

from tunesmith.core.train.launcher import launch
from tunesmith.core.train.rundir import RunDir
from toy import sft_rows, toy_config, write_json

pytestmark = [pytest.mark.distributed, pytest.mark.slow]
BATCH, ACCUM = 2, 2
COMMON = ["distributed.nproc_per_node=2", f"training.batch_size={BATCH}", f"training.gradient_accumulation={ACCUM}",
          "training.max_steps=6", "training.save_steps=3"]


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_json(sft_rows(48), tmp_path_factory.mktemp("data") / "toy.json")


def run(tmp_path_factory, model_dir, data, name, extra, timeout=420):
    run_dir = tmp_path_factory.mktemp("dist") / name
    handle = launch(toy_config(model_dir, data, run_dir, COMMON + extra))
    status = handle.wait(timeout)
    if handle.is_alive():
        handle.kill()
    return run_dir, status


def check_split_and_single_writer(run_dir, status):
    assert status["state"] == "finished", (status, RunDir(run_dir).log_tail(40))
    assert status["world_size"] == 2
    rd = RunDir(run_dir)
    train = [m for m in rd.read_metrics() if m["kind"] == "train"]
    assert [m["step"] for m in train] == list(range(1, 7))  # one line per step: rank 0 alone writes
    sequences = status["dataset"]["sequences"]
    per_rank_batches = math.ceil(math.ceil(sequences / 2) / BATCH)
    assert train[0]["epoch"] == pytest.approx(ACCUM / per_rank_batches, abs=1e-4)  # half the data per rank
    log = rd.log_path.read_text()
    assert log.count("[tunesmith] step 1/6 ") == 1
    samples = rd.read_samples()
    assert len({s["step"] for s in samples}) == len(samples)
    return train


@pytest.fixture(scope="module")
def ddp_lora(tmp_path_factory, tiny_model_dir, toy_data):
    return run(tmp_path_factory, tiny_model_dir, toy_data, "ddp_lora", [])


def test_ddp_lora_splits_data_and_learns(ddp_lora):
    run_dir, status = ddp_lora
    train = check_split_and_single_writer(run_dir, status)
    assert train[-1]["loss"] < train[0]["loss"] - 0.2
    adapter = load_file(RunDir(run_dir).latest_checkpoint() / "adapter_model.safetensors")
    assert all("lora_" in k for k in adapter)
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)


def test_deepspeed_zero2_splits_data_and_only_rank0_writes(tmp_path_factory, tiny_model_dir, toy_data):
    run_dir, status = run(tmp_path_factory, tiny_model_dir, toy_data, "zero2", ["distributed.deepspeed=zero2"])
    train = check_split_and_single_writer(run_dir, status)
    assert train[-1]["loss"] < train[0]["loss"] - 0.2
    final = RunDir(run_dir).latest_checkpoint()
    assert (final / "adapter_model.safetensors").is_file() and (final / "config.yaml").is_file()
    assert (final / f"global_step{status['step']}").is_dir()  # DeepSpeed's sharded optimizer state
    ds = json.loads((run_dir / "deepspeed.json").read_text())  # what was really used, no "auto" left
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["train_batch_size"]) == \
        (BATCH, ACCUM, BATCH * ACCUM * 2)


def test_deepspeed_zero3_trains_and_every_rank_generates(tmp_path_factory, tiny_model_dir, toy_data):
    run_dir, status = run(tmp_path_factory, tiny_model_dir, toy_data, "zero3", ["distributed.deepspeed=zero3"])
    train = check_split_and_single_writer(run_dir, status)
    assert train[-1]["loss"] < train[0]["loss"] - 0.2
    samples = RunDir(run_dir).read_samples()
    assert [s["step"] for s in samples] == [0, 3, 6]  # generate ran on both ranks (synced) without hanging


def test_stop_on_a_two_process_full_finetune_saves_and_ends_every_process(tmp_path_factory, tiny_model_dir,
                                                                           toy_data, monkeypatch):
    monkeypatch.setenv("TUNESMITH_FAULT", "sleep_per_step:1.0")
    run_dir = tmp_path_factory.mktemp("dist") / "full_stop"
    cfg = toy_config(tiny_model_dir, toy_data, run_dir, COMMON + ["method.finetuning=full", "training.max_steps=40",
                                                                  "training.save_steps=0",
                                                                  "training.learning_rate=0.002"])
    handle = launch(cfg)
    rd = RunDir(run_dir)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len([m for m in rd.read_metrics() if m["kind"] == "train"]) < 3:
        time.sleep(0.2)
    leader = psutil.Process(rd.read_status()["pid"])
    group = [leader, *leader.children(recursive=True)]
    assert len(group) >= 4  # supervisor, torchrun, two ranks (each rank in a session of its own)
    assert handle.stop() == "stopping"
    status = handle.wait(180)
    assert status["state"] == "stopped", (status, rd.log_tail(30))
    step = status["step"]
    assert 3 <= step < 40 and status["latest_checkpoint"] == f"checkpoint-{step}"
    gone, alive = psutil.wait_procs(group, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
    assert not handle.is_alive()
    train = [m for m in rd.read_metrics() if m["kind"] == "train"]
    assert [m["step"] for m in train] == list(range(1, step + 1))
    assert train[-1]["loss"] < train[0]["loss"] - 0.5  # full fine-tuning on two ranks learns
    saved = load_file(rd.latest_checkpoint() / "model.safetensors")["model.embed_tokens.weight"]
    assert not torch.equal(saved, load_file(tiny_model_dir / "model.safetensors")["model.embed_tokens.weight"])


def test_two_nodes_on_one_machine_both_end_finished(tmp_path_factory, tiny_model_dir, toy_data):
    """Two launches of `python -m tunesmith train --nnodes 2 --node-rank R`, one process each, as on two machines that
    share the run folder. Node 1's supervisor used to see its trainer exit 0 "without reporting a result" (only
    global rank 0 reports) and end failed with exit code 1, so a scheduler saw a failure."""
    from tunesmith.core.paths import SOURCE_ROOT, child_env
    from tunesmith.core.train.commands import free_port

    base = tmp_path_factory.mktemp("nodes")
    config = base / "two_nodes.yaml"
    toy_config(tiny_model_dir, toy_data, None, ["training.max_steps=4", "training.save_steps=2",
                                                f"training.batch_size={BATCH}",
                                                f"training.gradient_accumulation={ACCUM}"]).save(config)
    work, port = base / "run", free_port()

    def node(rank: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tunesmith", "train", str(config), "--work-dir", str(work),
                                 "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1",
                                 "--master-addr", "127.0.0.1", "--master-port", str(port)],
                                cwd=SOURCE_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=child_env())

    nodes = [node(0)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (work / "status.json").exists():  # node 0 owns the run folder
        time.sleep(0.2)
    nodes.append(node(1))
    try:
        outputs = [p.communicate(timeout=480)[0] for p in nodes]
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
    main, other = RunDir(work), RunDir(work / "nodes" / "node-1")
    assert [p.returncode for p in nodes] == [0, 0], (outputs, main.log_tail(30), other.log_tail(30))
    status = main.read_status()
    assert (status["state"], status["step"], status["world_size"], status["exit_code"]) == ("finished", 4, 2, 0)
    node1 = other.read_status()
    assert (node1["state"], node1["exit_code"], node1["step"]) == ("finished", 0, 4), node1
    assert "without reporting" not in node1["message"] and node1["latest_checkpoint"] == "checkpoint-4"
    train = [m for m in main.read_metrics() if m["kind"] == "train"]
    assert [m["step"] for m in train] == [1, 2, 3, 4]  # global rank 0 alone writes metrics
    sequences = status["dataset"]["sequences"]
    assert train[0]["epoch"] == pytest.approx(ACCUM / math.ceil(math.ceil(sequences / 2) / BATCH), abs=1e-4)
    assert not other.metrics_path.exists() and "[finished]" in outputs[1]


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None
