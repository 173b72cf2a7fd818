"""End to end in headless Chromium: the studio as a user drives it.

One app process per test module with its own TUNESMITH_HOME; a tiny random Llama (built into that
home, then typed into the Model tab) keeps training to seconds. Screenshots of every tab land in
test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from browser_helpers import (CHROMIUM, CHROMIUM_ARGS, AppProcess, answer_seen, chromium_missing_reason, choose, click,
                             fill, kill_runs, open_accordion, open_tab, sel, shot, text_of, value_of, wait_text,
                             watch_answers)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
_missing = chromium_missing_reason()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=_missing))

DEMO = Path(__file__).resolve().parent.parent / "tunesmith" / "assets" / "identity.json"
MAX_START_S = 20.0
STEPS = 40


@pytest.fixture(scope="module")
def home(tmp_path_factory, tokenizer_dir):
    from tiny import make_tiny_llama

    home = tmp_path_factory.mktemp("studio-home")
    make_tiny_llama(home / "models" / "tiny", tokenizer_dir)
    rows = [{"messages": [{"role": "user", "content": q},
                          {"role": "assistant", "content": "I am Melody, trained with Tunesmith."}]}
            for q in ("Who are you?", "What is your name?", "Introduce yourself.", "Who made you?")] * 6
    (home / "mine.json").write_text(json.dumps(rows))
    return home


@pytest.fixture(scope="module")
def app(home):
    proc = AppProcess(home)
    print(f"\nstudio served its first page {proc.ready_s:.1f}s after the process started")
    yield proc
    proc.stop()
    kill_runs(home)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


def points(page) -> int:
    loc = page.locator(f"{sel('train/points')} [data-points]")
    return int(loc.first.get_attribute("data-points")) if loc.count() else 0


def run_state(page) -> str | None:
    loc = page.locator(f"{sel('train/progress')} .ts-progress")
    return loc.first.get_attribute("data-state") if loc.count() else None


def wait_until(page, predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(400)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def use_tiny_model(page, home: Path) -> None:
    open_tab(page, "2 · Model")
    fill(page, "model.name_or_path", home / "models" / "tiny")
    click(page, "model/facts_btn")
    facts = wait_text(page, "model/facts", "Layers", 60)  # plain names; the config key is the tooltip
    assert "6.4 M" in facts and "llama" in facts


def test_first_page_is_served_quickly(app):
    assert app.ready_s < MAX_START_S, f"first page after {app.ready_s:.1f}s"


def test_data_train_reload_export_chat(app, home, page):
    page.goto(app.url)
    wait_text(page, "data/suggest", "Columns", 60) if DEMO.exists() else page.wait_for_timeout(1500)
    use_tiny_model(page, home)
    shot(page, "tab_model")

    # ---- Data: the demo set (or our own file when the demo is not generated yet), preview
    open_tab(page, "1 · Data")
    if DEMO.exists():
        choose(page, "data/demo", DEMO.name)
    else:
        fill(page, "data.path", home / "mine.json")
    assert "openai" in wait_text(page, "data/suggest", "Suggested", 60)
    click(page, "data/preview_btn")
    wait_text(page, "data/status", "rows kept", 90)
    assert page.locator(f"{sel('data/preview')} .ts-sup").count() >= 3
    assert page.locator(f"{sel('data/preview')} .ts-masked").count() >= 3
    assert "rows" in text_of(page, "data/stats")
    assert value_of(page, "data/cmd").startswith("python -m tunesmith check-dataset")
    shot(page, "tab_data")

    # ---- Method: LoRA, a run long enough to reload in the middle of it
    open_tab(page, "3 · Method")
    assert page.get_by_label("lora", exact=True).is_checked()
    fill(page, "training.max_steps", STEPS)
    fill(page, "training.batch_size", 2)
    open_accordion(page, "method/advanced")
    fill(page, "training.save_steps", STEPS // 2)
    wait_until(page, lambda: page.locator(f"{sel('method/memory')} .ts-memory").count(), 60, "the memory estimate")
    assert "python -m tunesmith estimate" in value_of(page, "method/cmd")
    shot(page, "tab_method")

    # ---- Train: start, watch the loss plot gain points
    open_tab(page, "4 · Train")
    click(page, "train/preview_btn")
    assert "--work-dir" in wait_text(page, "train/cmd", "python -m tunesmith train", 60)
    click(page, "train/start_btn")
    started = wait_text(page, "train/status", "Started run", 60)
    run_name = started.split("Started run", 1)[1].split("\n")[0].strip().rstrip(".")
    first = wait_until(page, lambda: points(page) >= 2 and points(page), 120, "the first loss points")

    # a second Start while the run is going asks to stop it or queue
    click(page, "train/start_btn")
    wait_until(page, lambda: page.locator(sel("train/stop_and_start")).is_visible(), 30, "the busy question")
    click(page, "train/cancel_btn")

    # reload mid-run: the page re-attaches to the run on its own
    page.reload()
    open_tab(page, "4 · Train")
    wait_text(page, "train/progress", run_name, 30)
    after = wait_until(page, lambda: points(page) > first and points(page), 60, "more points after the reload")
    assert after > first
    wait_until(page, lambda: run_state(page) == "finished", 300, "the run to finish")
    assert points(page) == STEPS
    assert f"step {STEPS} / {STEPS}" in text_of(page, "train/progress")
    assert "Who are you?" in text_of(page, "train/samples")
    for plot in ("train/plot_loss", "train/plot_lr", "train/plot_grad"):  # drawn as lines, with numeric axes
        assert page.locator(f"{sel(plot)} [aria-roledescription='line mark']").count() >= 1, plot
    shot(page, "tab_train")
    run_dir = home / "runs" / run_name
    assert (run_dir / "checkpoints" / f"checkpoint-{STEPS}" / "adapter_model.safetensors").is_file()

    # ---- Export: merge the adapter into the base
    open_tab(page, "5 · Export")
    wait_until(page, lambda: run_name in value_of(page, "export/run"), 30, "the run in the export list")
    click(page, "export/btn")
    done = wait_text(page, "export/status", "Done", 180)
    out = Path(done.split("Done:", 1)[1].split("\n")[0].strip())
    assert (out / "config.json").is_file() and list(out.glob("*.safetensors"))
    assert page.locator(f"{sel('export/progress')} .ts-ok").count() == 1
    shot(page, "tab_export")

    # ---- Chat: talk to the run's adapter, streamed
    open_tab(page, "6 · Chat")
    wait_until(page, lambda: run_name in value_of(page, "chat/run"), 30, "the run preselected in Chat")
    # long enough that a fast machine still sends several updates (they go out ten times a second)
    fill(page, "chat/max_new_tokens", 300)
    fill(page, "chat/temperature", 0)
    click(page, "chat/load_btn")
    wait_text(page, "chat/status", "Loaded", 120)
    watch_answers(page)
    fill(page, "chat/input", "Who are you?", enter=True)
    wait_text(page, "chat/status", "tokens/s", 120)
    seen = answer_seen(page, 0)
    assert seen and seen["texts"][-1].strip(), "no answer arrived"
    assert len(seen["texts"]) >= 2, f"the answer did not stream: {seen}"
    shot(page, "tab_chat")

    # ---- the language switches live
    choose(page, "top/lang", "简体中文")
    wait_until(page, lambda: page.get_by_role("tab", name="4 · 训练").count(), 20, "Chinese tab labels")
    open_tab(page, "4 · 训练")
    assert page.locator(sel("train/start_btn")).inner_text().strip() == "开始"
    shot(page, "tab_train_zh")
