"""In headless Chromium: the app process dies mid-run and a new one re-attaches; Stop ends the run;
a run that fails on bad data explains itself in plain words and the app keeps serving."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from browser_helpers import (CHROMIUM, CHROMIUM_ARGS, AppProcess, chromium_missing_reason, click, fill, kill_runs,
                             open_tab, sel, shot, text_of, wait_text)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
_missing = chromium_missing_reason()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=_missing))


@pytest.fixture(scope="module")
def home(tmp_path_factory, tokenizer_dir):
    from tiny import make_tiny_llama

    home = tmp_path_factory.mktemp("recovery-home")
    make_tiny_llama(home / "models" / "tiny", tokenizer_dir)
    good = [{"input": f"Question {i}?", "output": f"Answer {i}."} for i in range(16)]
    (home / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good))
    (home / "bad.jsonl").write_text("".join(json.dumps({"input": f"q{i}", "output": ""}) + "\n" for i in range(8)))
    yield home
    kill_runs(home)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _state(page):
    loc = page.locator(f"{sel('train/progress')} .ts-progress")
    return loc.first.get_attribute("data-state") if loc.count() else None


def _wait(page, predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        page.wait_for_timeout(400)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def _steps_logged(run_dir) -> int:
    from tunesmith.core.train.rundir import RunDir

    return max((m["step"] for m in RunDir(run_dir).read_metrics() if m.get("kind") == "train"), default=0)


def _configure(page, home, data: str, steps: int) -> None:
    open_tab(page, "2 · Model")
    fill(page, "model.name_or_path", home / "models" / "tiny")
    open_tab(page, "1 · Data")
    fill(page, "data.path", home / data)
    wait_text(page, "data/suggest", "Columns", 60)
    open_tab(page, "3 · Method")
    fill(page, "training.max_steps", steps)
    open_tab(page, "4 · Train")


def test_app_restart_reattaches_then_stop_and_a_failed_run(home, browser):
    app = AppProcess(home)
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        page.goto(app.url)
        _configure(page, home, "good.jsonl", 2000)
        click(page, "train/start_btn")
        started = wait_text(page, "train/status", "Started run", 60)
        run_name = started.split("Started run", 1)[1].split("\n")[0].strip().rstrip(".")
        _wait(page, lambda: _state(page) == "running", 120, "the run to be running")

        # the browser goes away (tab, session and all): training goes on with no page open
        page.context.close()
        steps = _steps_logged(home / "runs" / run_name)
        deadline = time.monotonic() + 60
        while _steps_logged(home / "runs" / run_name) < steps + 3:
            assert time.monotonic() < deadline, "training stalled while no browser was open"
            time.sleep(0.5)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()

        # the GUI process dies (kill -9); the run goes on; a new GUI attaches to it
        os.kill(app.proc.pid, signal.SIGKILL)
        app.proc.wait(timeout=10)
        app.stop()
        app = AppProcess(home)
        page.goto(app.url)
        open_tab(page, "4 · Train")
        wait_text(page, "train/progress", run_name, 30)
        assert _state(page) == "running"
        open_tab(page, "2 · Model")  # the form shows the config of the run it re-attached to
        assert page.locator(f"{sel('model.name_or_path')} textarea, {sel('model.name_or_path')} input").first \
            .input_value() == str(home / "models" / "tiny")
        open_tab(page, "4 · Train")
        steps_before = text_of(page, "train/progress")
        _wait(page, lambda: text_of(page, "train/progress") != steps_before, 60, "the run to advance")

        # Stop: graceful (a checkpoint at the next step), then the run ends as stopped
        click(page, "train/stop_btn")
        wait_text(page, "train/status", "Stop requested", 30)
        assert "python -m tunesmith stop" in page.locator(f"{sel('train/cmd')} textarea").input_value()
        _wait(page, lambda: _state(page) == "stopped", 120, "the run to stop")
        assert (home / "runs" / run_name / "checkpoints").is_dir()
        shot(page, "train_stopped")

        # a run on data with nothing to learn fails and says so in plain words; the app keeps serving
        _configure(page, home, "bad.jsonl", 20)
        click(page, "train/start_btn")
        wait_text(page, "train/status", "Started run", 60)
        _wait(page, lambda: _state(page) == "failed", 120, "the bad run to fail")
        failure = wait_text(page, "train/failure", "What to try", 30)
        assert "empty" in failure.lower() or "no training samples" in failure.lower(), failure
        shot(page, "train_failed")
        open_tab(page, "1 · Data")
        click(page, "data/preview_btn")
        wait_text(page, "data/status", "Error", 60)  # the same problem, shown before training
    finally:
        app.stop()
        page.context.close()
