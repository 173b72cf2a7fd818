"""kill -9 mid-run, then Resume: training continues from the last complete checkpoint and the loss
curve equals an uninterrupted run with the same seed (within 1e-4 on CPU).

Two kills: first only the trainer process (the supervisor records how it died), then the whole
process group at once (as when the machine or the GUI's session dies): attach() must report it.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tunesmith.core.train.launcher import attach, launch, run_here
from tunesmith.core.train.rundir import RunDir
from toy import sft_rows, toy_config, write_json

pytestmark = pytest.mark.slow
OVERRIDES = ["training.max_steps=8", "training.save_steps=2", "lora.dropout=0.1"]


def losses(run_dir) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in RunDir(run_dir).read_metrics() if m.get("kind") == "train"}


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def checkpoint_at_least(rd: RunDir, step: int) -> bool:
    latest = rd.latest_checkpoint()
    return latest is not None and int(latest.name.split("-")[1]) >= step


def test_kill_minus_nine_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_model_dir, monkeypatch):
    data = write_json(sft_rows(32), tmp_path / "toy.json")
    reference = run_here(toy_config(tiny_model_dir, data, tmp_path / "reference", OVERRIDES))
    assert reference["state"] == "finished"
    expected = losses(tmp_path / "reference")

    run_dir = tmp_path / "killed"
    rd = RunDir(run_dir)
    monkeypatch.setenv("TUNESMITH_FAULT", "sleep_per_step:1.0")  # slow enough to kill between checkpoints

    # 1) kill -9 the trainer process alone, after checkpoint-2 and before the end
    handle = launch(toy_config(tiny_model_dir, data, run_dir, OVERRIDES))
    wait_until(lambda: checkpoint_at_least(rd, 2) and max(losses(run_dir) or [0]) >= 3, 180, "checkpoint-2")
    trainer_pid = rd.read_status()["trainer_pid"]
    os.kill(trainer_pid, signal.SIGKILL)
    status = handle.wait(60)
    assert status["state"] == "failed" and "SIGKILL" in status["error"], status
    assert "Resume from the latest checkpoint" in status["advice"]
    assert not handle.is_alive() and not rd.is_locked()

    # 2) resume, then kill -9 the whole process group (supervisor included: nobody left to report)
    handle = launch(toy_config(tiny_model_dir, data, run_dir, OVERRIDES + ["training.resume_from=latest"]))
    resumed_from = int(RunDir(run_dir).read_status()["resume_from"].rsplit("-", 1)[1])
    wait_until(lambda: checkpoint_at_least(rd, resumed_from + 2), 180, "a checkpoint after the resume")
    pgid = rd.read_status()["pgid"]
    group = [p for p in psutil.process_iter() if _pgid(p.pid) == pgid]
    os.killpg(pgid, signal.SIGKILL)
    handle._popen.wait(10)
    psutil.wait_procs(group, timeout=10)
    assert rd.read_status()["state"] in ("running", "stopping")  # what the dead run left behind
    status = attach(run_dir).status()
    assert status["state"] == "failed" and "never reported" in status["error"], status

    # 3) resume to the end; every step's loss equals the uninterrupted run's
    monkeypatch.delenv("TUNESMITH_FAULT")
    final = run_here(toy_config(tiny_model_dir, data, run_dir, OVERRIDES + ["training.resume_from=latest"]))
    assert final["state"] == "finished", final
    got = losses(run_dir)
    assert sorted(got) == list(range(1, 9))
    for step, loss in expected.items():
        assert abs(got[step] - loss) < 1e-4, (step, got[step], loss)


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None
