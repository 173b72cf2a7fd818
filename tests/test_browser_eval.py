"""In headless Chromium: evaluate a finished run on a test file (progress, then the summary with the
noise verdict and the best / worst examples), and compare two runs (curves, only the changed fields)."""

from __future__ import annotations

import pytest

from browser_helpers import (CHROMIUM, CHROMIUM_ARGS, AppProcess, chromium_missing_reason, choose, click, fill,
                             open_accordion, open_tab, sel, shot, wait_text)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
_missing = chromium_missing_reason()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=_missing))


@pytest.fixture(scope="module")
def home(tmp_path_factory, tokenizer_dir):
    from eval_helpers import make_run, write_qa_file
    from tiny import make_tiny_llama

    from tunesmith.core.train.rundir import RunDir

    home = tmp_path_factory.mktemp("eval-home")
    base = make_tiny_llama(home / "models" / "tiny", tokenizer_dir)
    data = write_qa_file(home / "qa.json")
    for name, lr, seed in (("tiny-a", "0.0001", 1), ("tiny-b", "0.0002", 2)):
        run = make_run(home / "runs" / name, base, data, seed=seed, overrides=[f"training.learning_rate={lr}"])
        rd = RunDir(run)
        for step in (1, 2):
            rd.append_jsonl(rd.metrics_path, {"step": step, "kind": "train", "loss": 3.0 / step + seed / 10})
        rd.append_jsonl(rd.metrics_path, {"step": 2, "kind": "eval", "eval_loss": 2.0 + seed / 10})
    return home


@pytest.fixture(scope="module")
def page(home):
    from playwright.sync_api import sync_playwright

    app = AppProcess(home)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app.url)
            # Hidden tabs are not visible, so wait for the tab strip, then for the Train tab's content.
            page.get_by_role("tab", name="4 · Train").wait_for(timeout=60_000)
            open_tab(page, "4 · Train")
            page.wait_for_selector(sel("train/start_btn"), timeout=60_000)
            yield page
            browser.close()
    finally:
        app.stop()


def test_evaluate_a_run_on_a_test_file(page, home):
    open_accordion(page, "train/eval")
    choose(page, "eval/run", "tiny-a · finished")
    fill(page, "eval/data", home / "qa.json")
    fill(page, "eval/limit", 6)
    fill(page, "eval/max_new_tokens", 4)
    click(page, "eval/start_btn")
    wait_text(page, "eval/cmd", "python -m tunesmith evaluate", 30)
    summary = wait_text(page, "eval/summary", "ROUGE-L", 300)
    shot(page, "eval-summary")
    assert "larger than the noise?" in summary and "tuned - base" in summary
    assert ("better at" in summary or "worse at" in summary or "no difference" in summary)
    assert 'data-state="finished"' in page.locator(sel("eval/progress")).first.inner_html()
    # Gradio 6's table does not keep one <tr> per row in a single tbody, so read the rows' prompts:
    # --limit 6 shows exactly the first six questions of the file.
    from eval_helpers import QA

    table = page.locator(sel("eval/examples")).first.inner_text()
    assert all(q in table for q, _ in QA[:6]) and not any(q in table for q, _ in QA[6:]), table[:2000]
    assert (home / "runs" / "tiny-a" / "eval" / "qa" / "summary.json").is_file()


def test_compare_two_runs(page):
    open_accordion(page, "train/compare")
    choose(page, "compare/runs", "tiny-a · finished")
    choose(page, "compare/runs", "tiny-b · finished")
    click(page, "compare/btn")
    diff = wait_text(page, "compare/diff", "training.learning_rate", 60)
    shot(page, "eval-compare")
    assert "0.0001" in diff and "0.0002" in diff
    assert "data.path" not in diff and "output.run_dir" not in diff and "lora.r" not in diff
    assert "1 setting(s) differ" in page.locator(sel("compare/status")).first.inner_text()
    plot = page.locator(f"{sel('compare/plot')} canvas, {sel('compare/plot')} svg")
    assert plot.count() > 0  # the overlay was drawn (its series are checked in tests/test_eval_app.py)
    evals = page.locator(sel("compare/evals")).first.inner_text()
    assert "tiny-a" in evals and "qa" in evals  # the evaluation of the first test is listed
