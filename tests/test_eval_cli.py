"""`python -m tunesmith evaluate` as a subprocess: progress in status.json, results, stop by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tunesmith.core.paths import SOURCE_ROOT
from eval_helpers import make_run, write_qa_file


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("eval-cli")
    data = write_qa_file(root / "qa.json")
    return make_run(root / "run", tiny_model_dir, data), data


@pytest.mark.slow  # a real evaluate subprocess: the fast tier keeps the cheaper tests of the same code
def test_cli_evaluates_in_a_subprocess_and_prints_the_table(tiny_run):
    run, data = tiny_run
    proc = subprocess.run([sys.executable, "-m", "tunesmith", "evaluate", str(run), "--data", str(data), "--limit", "4",
                           "--max-new-tokens", "4", "--name", "cli"], cwd=SOURCE_ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "evaluation 'cli': 4 example(s)" in proc.stdout and "ROUGE-L" in proc.stdout
    out = run / "eval" / "cli"
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "finished" and status["progress"] == 1.0 and status["n"] == 4
    assert json.loads((out / "request.json").read_text())["limit"] == 4
    assert json.loads((out / "summary.json").read_text())["n"] == 4
    assert len((out / "examples.jsonl").read_text().splitlines()) == 4


def test_cli_bad_input_is_one_line_with_a_fix(tiny_run, tmp_path):
    run, _ = tiny_run
    proc = subprocess.run([sys.executable, "-m", "tunesmith", "evaluate", str(run), "--data", str(tmp_path / "no.json")],
                          cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: test file") and "Fix:" in proc.stderr


@pytest.mark.slow  # a real evaluate subprocess: the fast tier keeps the cheaper tests of the same code
def test_sigterm_stops_the_evaluation_between_batches(tiny_run, monkeypatch):
    from tunesmith.core.eval.launch import start
    from tunesmith.core.eval.runner import EvalRequest

    run, data = tiny_run
    monkeypatch.setenv("TUNESMITH_FAULT", "sleep_per_batch:1")
    handle = start(EvalRequest(str(run), data=str(data), batch_size=1, max_new_tokens=2, name="stopme"))
    deadline = time.monotonic() + 300
    while (handle.rd.read_status().get("progress") or 0) <= 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    running = handle.rd.read_status()
    assert running["state"] == "running" and 0 < running["progress"] < 0.5, running
    os.kill(handle.pid, signal.SIGTERM)  # the supervisor turns it into a STOP request
    status = handle.wait(timeout=120)
    assert status["state"] == "stopped" and "no results" in status["message"], status
    assert not (handle.run_dir / "summary.json").exists()
    assert not handle.is_alive()
