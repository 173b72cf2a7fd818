"""`python -m tunesmith train | demo | status | stop`: XTuner's flags and env vars, printed commands, errors,
and a foreground run that Ctrl-C stops gracefully."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from tunesmith.core.cli import main
from tunesmith.core.paths import SOURCE_ROOT, child_env
from tunesmith.core.train.rundir import RunDir
from toy import sft_rows, toy_config, write_json


@pytest.fixture
def config_yaml(tmp_path, tiny_model_dir):
    data = write_json(sft_rows(24), tmp_path / "toy.json")
    path = tmp_path / "tiny.yaml"
    toy_config(tiny_model_dir, data).save(path)
    return path


def printed_command(capsys, *args) -> list[str]:
    assert main(["train", *args, "--print-command"]) == 0
    return capsys.readouterr().out.strip().split()


def test_print_command_follows_flags_and_xtuner_env_vars(capsys, monkeypatch, config_yaml, tmp_path):
    work = tmp_path / "w"
    cmd = printed_command(capsys, str(config_yaml), "--work-dir", str(work))
    assert cmd[1:] == ["-m", "tunesmith.core.train.entry", str(work)]
    monkeypatch.setenv("NPROC_PER_NODE", "2")
    monkeypatch.setenv("NNODES", "2")
    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.setenv("ADDR", "10.1.2.3")
    monkeypatch.setenv("PORT", "29999")
    cmd = printed_command(capsys, str(config_yaml), "--work-dir", str(work))
    for arg in ("--nproc_per_node=2", "--nnodes=2", "--node_rank=1", "--master_addr=10.1.2.3", "--master_port=29999"):
        assert arg in cmd, cmd
    cmd = printed_command(capsys, str(config_yaml), "--work-dir", str(work), "--nproc-per-node", "3",
                          "--master-port", "30001")
    assert "--nproc_per_node=3" in cmd and "--master_port=30001" in cmd  # flags win over env vars
    monkeypatch.delenv("NPROC_PER_NODE")
    monkeypatch.delenv("NNODES")
    monkeypatch.delenv("NODE_RANK")
    cmd = printed_command(capsys, str(config_yaml), "--work-dir", str(work), "--launcher", "slurm",
                          "--nnodes", "2")
    assert cmd[:2] == ["srun", "--nodes=2"] and cmd[-2:] == ["--launcher", "slurm"]
    cmd = printed_command(capsys, str(config_yaml), "--work-dir", str(work), "--deepspeed", "deepspeed_zero2")
    assert "--nproc_per_node=1" in cmd  # DeepSpeed goes through torchrun


def test_overrides_seed_and_resume_reach_the_config(config_yaml):
    import argparse

    from tunesmith.core.cli.train_cmds import config_from_args

    args = argparse.Namespace(config=str(config_yaml), overrides=["training.learning_rate=1e-4"], seed=7,
                              resume="latest", work_dir="/tmp/x", deepspeed="zero3", launcher="pytorch",
                              nproc_per_node=None, nnodes=None, node_rank=None, master_addr=None, master_port=None)
    cfg = config_from_args(args)
    assert cfg.training.learning_rate == 1e-4 and cfg.training.seed == 7
    assert cfg.training.resume_from == "latest" and cfg.output.run_dir == "/tmp/x"
    assert cfg.distributed.deepspeed == "zero3" and cfg.distributed.launcher == "torchrun"


def _cli(*args, env=None, timeout=60, cwd=SOURCE_ROOT):
    return subprocess.run([sys.executable, "-m", "tunesmith", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=child_env(**(env or {})))


def test_bad_config_is_one_error_line_with_exit_code_2(tmp_path, config_yaml):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  batch_size: 0\n")
    out = _cli("train", str(bad), "--work-dir", str(tmp_path / "w"))
    assert out.returncode == 2
    assert out.stderr.startswith("error:") and "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1
    out = _cli("train", str(config_yaml), "--resume", "--work-dir", str(tmp_path / "nothing"))
    assert out.returncode == 2 and "no complete checkpoint" in out.stderr


def test_status_and_stop_verbs_on_a_run_folder(tmp_path, capsys):
    rd = RunDir(tmp_path / "r")
    rd.write_status(state="failed", message="Out of memory.", error="Out of memory.", advice="Use QLoRA.",
                    log=["RuntimeError: CUDA out of memory"], step=3, total_steps=10)
    assert main(["status", str(rd.path)]) == 0
    out = capsys.readouterr().out
    assert "state:   failed" in out and "advice:  Use QLoRA." in out and "CUDA out of memory" in out
    assert main(["stop", str(rd.path)]) == 0
    assert capsys.readouterr().out.strip() == "not running"


@pytest.mark.slow
def test_foreground_train_shows_progress_and_ctrl_c_stops_gracefully(tmp_path, config_yaml):
    work = tmp_path / "fg"
    env = child_env(TUNESMITH_FAULT="sleep_per_step:0.5", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "train", str(config_yaml), "--work-dir", str(work),
                             "--set", "training.max_steps=30", "training.save_steps=0"], cwd=SOURCE_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            # a suite started in the background (`make test &`) ignores SIGINT, and a child
                            # inherits that: Python then installs no Ctrl-C handler and the run goes on
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(line.startswith("step 2/30") for line in lines):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: graceful stop
    assert proc.wait(timeout=180) == 0
    reader.join(5)
    text = "".join(lines)
    assert f"run folder: {work}" in text and "step 1/30  loss" in text
    assert "stopping: saving a checkpoint" in text and "[stopped]" in text, text
    status = RunDir(work).read_status()
    assert status["state"] == "stopped" and RunDir(work).latest_checkpoint().name == f"checkpoint-{status['step']}"


def test_demo_print_command_uses_the_bundled_model_and_identity_data(capsys, tmp_path):
    assert main(["demo", "--work-dir", str(tmp_path / "d"), "--print-command"]) == 0
    assert capsys.readouterr().out.split()[1:] == ["-m", "tunesmith.core.train.entry", str(tmp_path / "d")]
    from tunesmith.core.train.demo import demo_config

    cfg = demo_config(str(tmp_path / "d"))
    assert cfg.model.name_or_path == "embedded:SmolLM2-135M-Instruct" and cfg.uses_lora
    assert cfg.data.path.endswith("identity.json") and cfg.training.max_steps <= 20


def test_demo_never_reuses_a_folder_holding_an_earlier_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    RunDir(tmp_path / "work_dirs" / "demo").write_status(state="finished")
    assert main(["demo", "--print-command"]) == 0
    assert capsys.readouterr().out.split()[-1] == str(tmp_path / "work_dirs" / "demo-2")


@pytest.mark.slow
def test_resume_by_step_number_or_checkpoint_name_takes_the_runs_checkpoint(tmp_path, config_yaml):
    """`--resume 4` and `--resume checkpoint-6` name checkpoints of the run folder (--work-dir), as the docs
    say, even from a current folder that holds a checkpoint of the same name."""
    import shutil

    from tunesmith.core.config import RunConfig
    from tunesmith.core.train.launcher import run_here

    work = tmp_path / "run"
    status = run_here(RunConfig.load(config_yaml).with_overrides([f"output.run_dir={work}", "training.max_steps=4",
                                                                  "training.save_steps=2"]))
    rd = RunDir(work)
    assert status["state"] == "finished" and [c.name for c in rd.list_checkpoints()] == ["checkpoint-2",
                                                                                         "checkpoint-4"]
    elsewhere = tmp_path / "elsewhere"  # the user's current folder, with a complete decoy named checkpoint-6
    shutil.copytree(rd.checkpoints_dir / "checkpoint-2", elsewhere / "checkpoint-6")
    for resume, steps in (("4", 6), ("checkpoint-6", 8)):
        out = _cli("train", str(config_yaml), "--work-dir", str(work), "--resume", resume, "--set",
                   f"training.max_steps={steps}", "training.save_steps=2", cwd=elsewhere, timeout=400)
        assert out.returncode == 0, (resume, out.stdout[-1500:], out.stderr[-1500:])
        status = rd.read_status()
        assert (status["state"], status["step"], status["latest_checkpoint"]) == ("finished", steps,
                                                                                   f"checkpoint-{steps}")
        resumed_from = work / "checkpoints" / f"checkpoint-{steps - 2}"
        assert RunConfig.load(work).training.resume_from == str(resumed_from)
        # the trainer's own line (the CLI's status echo can miss a phase that lasts less than its poll)
        assert f"Resuming from checkpoint-{steps - 2}" in rd.log_path.read_text()
    assert [m["step"] for m in rd.read_metrics() if m["kind"] == "train"] == list(range(1, 9))
    out = _cli("train", str(config_yaml), "--work-dir", str(work), "--resume", "5", "--print-command", cwd=elsewhere)
    assert out.returncode == 2 and "checkpoint '5' was not found" in out.stderr and "checkpoint-8" in out.stderr
