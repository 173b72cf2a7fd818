"""Issue 12 in headless Chromium: the studio as a first-time user meets it.

Right guesses (a question/answer CSV is a plain conversation, a semicolon CSV has its columns, an
error takes the last preview away, choosing QLoRA says what it changed), honest progress (the
trainer's phase, a banner on every tab after a reload that leads to the Train tab, no "about 0:00
left" at the end, plots without a stray "series" legend), and one language at a time (every tab and
an error in Chinese, with no English word outside names, paths and commands).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from browser_helpers import (CHROMIUM, CHROMIUM_ARGS, AppProcess, chromium_missing_reason, choose, click, fill,
                             kill_runs, open_tab, sel, shot, text_of, value_of, wait_text)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
_missing = chromium_missing_reason()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=_missing))

STEPS = 8
TABS_EN = ["1 · Data", "2 · Model", "3 · Method", "4 · Train", "5 · Export", "6 · Chat"]
TABS_ZH = ["1 · 数据", "2 · 模型", "3 · 方法", "4 · 训练", "5 · 导出", "6 · 对话"]
# Words a Chinese page may show in Latin letters: product, library, method and file-format names,
# units, and the names of things on this machine. Paths, commands and ids (anything holding / . _ - = :
# or a digit) are skipped before this list is consulted.
ALLOWED = {
    "Tunesmith", "LoRA", "QLoRA", "DoRA", "rsLoRA", "DeepSpeed", "ZeRO", "GPU", "GPUs", "CPU", "CUDA", "token",
    "tokens", "map_fn", "columns", "openai", "alpaca", "sharegpt", "YAML", "JSON", "CSV", "GGUF", "API", "OpenAI",
    "Ollama", "llama", "cpp", "Studio", "LM", "HF", "Hub", "Hugging", "Face", "SmolLM", "Instruct", "embedded",
    "tiny", "mine", "json", "sft", "dpo", "orpo", "pretrain", "qlora", "lora", "full", "auto", "sdpa", "eager",
    "flash", "attention", "nf4", "fp4", "bf16", "fp16", "fp32", "float16", "bfloat16", "float32", "adamw",
    "torch", "paged", "cosine", "linear", "constant", "tensorboard", "wandb", "mlflow", "trackio", "none",
    "torchrun", "slurm", "srun", "master", "Top", "top", "MB", "GB", "MiB", "GiB", "logits", "Modelfile",
    "safetensors", "checkpoint", "latest", "chat_template", "Llama", "LlamaForCausalLM", "XTuner", "Beta",
    "sigmoid", "ipo", "hinge", "merge", "convert", "gguf", "base", "run", "merged", "Melody", "python", "core",
    "curl", "Modelscope", "zero", "offload", "inf", "nan", "loss", "step", "steps", "ETA", "kv", "config",
    "Gradio", "gradio", "Chromium", "Alpha", "alpha", "Dropout", "dropout", "DDP", "TRL", "Trainer", "DatasetDict",
    "datasets", "ID", "NAME", "optim", "nnodes", "bootstrap", "vs", "create", "chosen", "rejected", "Top-p", "Top-k",
}
# The page's text without what the user or the model wrote (data rows, answers, the log).
UI_TEXT_JS = """(selectors) => {
  const hidden = [];
  for (const s of selectors) document.querySelectorAll(s).forEach((e) => {
    hidden.push([e, e.style.display]); e.style.display = "none"; });
  const text = document.body.innerText;
  for (const [e, d] of hidden) e.style.display = d;
  return text;
}"""
# What the user or the model wrote (data rows, answers, the log) is not UI text.
CONTENT = ["train/samples", "train/log", "data/preview", "chat/bot", "chat/bot_b", "train/failure"]
LATIN = re.compile(r"[A-Za-z]{2,}")


def english_words(text: str) -> set[str]:
    """Latin-letter words of ``text`` that are not names, paths, commands or ids."""
    found = set()
    for chunk in text.split():
        if re.search(r"[/\\._=:\-\d@#<>{}\[\]()'\"`]", chunk):
            continue  # a path, a command, an id, a number with a unit
        for word in LATIN.findall(chunk):
            if word not in ALLOWED and word.lower() not in {w.lower() for w in ALLOWED}:
                found.add(word)
    return found


@pytest.fixture(scope="module")
def home(tmp_path_factory, tokenizer_dir):
    from tiny import make_tiny_llama

    home = tmp_path_factory.mktemp("first-user-home")
    make_tiny_llama(home / "models" / "tiny", tokenizer_dir)
    (home / "faq.csv").write_text("question,answer\nWhat are your hours?,Nine to five.\n"
                                  "Do you ship abroad?,Yes we do.\n" * 3, encoding="utf-8")
    (home / "de.csv").write_text("Frage;Antwort\nWie heißt du?;Melody\nWer hat dich gemacht?;Tunesmith\n",
                                 encoding="utf-8")
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "I am Melody."}]}
            for q in ("Who are you?", "What is your name?", "Introduce yourself.")] * 6
    (home / "mine.json").write_text(json.dumps(rows))
    return home


@pytest.fixture(scope="module")
def app(home):
    old = os.environ.get("TUNESMITH_FAULT")
    os.environ["TUNESMITH_FAULT"] = "sleep_per_step:2"  # slow steps: time to reload and look mid-run
    try:
        proc = AppProcess(home)
    finally:
        os.environ.pop("TUNESMITH_FAULT") if old is None else os.environ.__setitem__("TUNESMITH_FAULT", old)
    yield proc
    proc.stop()
    kill_runs(home)


@pytest.fixture(scope="module")
def page(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--lang=en-US"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
        yield context.new_page()
        browser.close()


def wait_for(page, predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(300)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def progress_attr(page, name: str):
    loc = page.locator(f"{sel('train/progress')} [{name}]")
    return loc.first.get_attribute(name) if loc.count() else None


def test_first_time_user(app, home, page):
    page.goto(app.url)
    wait_text(page, "data/suggest", "Columns", 60)
    # ---- item 12: the defaults in use are shown, and Stop is greyed out with nothing running
    assert value_of(page, "data/demo") == "identity.json"
    open_tab(page, "4 · Train")  # (a tab's widgets are in the page once it was opened)
    for button in ("train/stop_btn", "train/force_btn"):
        assert page.locator(sel(button)).first.is_disabled(), f"{button} is clickable with nothing running"
    open_tab(page, "2 · Model")
    assert value_of(page, "model/preset") == "smollm2_135m_instruct_lora_identity_e3"
    fill(page, "model.name_or_path", home / "models" / "tiny")

    # ---- item 1: a question/answer CSV is a plain conversation, no lawyer's system prompt
    open_tab(page, "1 · Data")
    fill(page, "data.path", home / "faq.csv")
    suggest = wait_text(page, "data/suggest", "no system prompt", 60)
    assert "law_reference" not in suggest and value_of(page, "data/col_input") == "question"
    click(page, "data/preview_btn")
    wait_text(page, "data/status", "rows kept", 90)
    assert "What are your hours?" in text_of(page, "data/preview") and "律师" not in text_of(page, "data/preview")
    assert value_of(page, "data/cmd").startswith("python -m tunesmith check-dataset")

    # ---- item 2: an error takes the last preview and command away; a semicolon CSV has two columns
    fill(page, "data.path", home / "nope.json")
    wait_text(page, "data/status", "Error:", 30)
    wait_for(page, lambda: "What are your hours?" not in text_of(page, "data/preview"), 10, "the old preview to go")
    assert value_of(page, "data/cmd") == ""
    fill(page, "data.path", home / "de.csv")
    assert "Frage, Antwort" in wait_text(page, "data/suggest", "Frage", 30)

    # ---- item 4: QLoRA says what it changed, where it was chosen
    open_tab(page, "3 · Method")
    fill(page, "training.learning_rate", 0.001)
    page.get_by_label("qlora", exact=True).check()
    changes = wait_text(page, "method/changes", "→", 30)
    assert "Learning rate 0.001 → 0.0002" in changes and "Gradient checkpointing" in changes
    page.get_by_label("lora", exact=True).check()
    fill(page, "training.max_steps", STEPS)
    fill(page, "training.batch_size", 2)
    # ---- item 12: the command line keeps its label and wraps inside its box (nothing cut off at the side)
    wait_for(page, lambda: "tunesmith" in value_of(page, "method/cmd"), 30, "the Method tab's command line")
    box = page.locator(f"{sel('method/cmd')} textarea").first
    assert box.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), "the command line is cut off at the side"
    assert page.locator(f"{sel('method/cmd')} [data-testid='block-info']").first.inner_text().strip()
    shot(page, "first_user_method")

    # ---- items 6, 7: the phase from the trainer, a banner on every tab after a reload
    open_tab(page, "1 · Data")
    fill(page, "data.path", home / "mine.json")
    wait_text(page, "data/suggest", "openai", 30)
    open_tab(page, "4 · Train")
    click(page, "train/start_btn")
    started = wait_text(page, "train/status", "Started run", 60)
    run_name = started.split("Started run", 1)[1].split("\n")[0].strip().rstrip(".")
    phases = set()
    wait_for(page, lambda: phases.add(progress_attr(page, "data-phase")) or progress_attr(page, "data-state")
             == "running" and "step" in text_of(page, "train/progress") and "elapsed" in text_of(page, "train/progress")
             and not progress_attr(page, "data-phase"), 180, "training steps")
    assert phases & {"starting", "loading_tokenizer", "tokenizing", "loading_model", "before"}, phases
    page.reload()
    wait_for(page, lambda: page.locator(sel("top/banner_row")).is_visible(), 30, "the banner after a reload")
    assert run_name in text_of(page, "top/banner")
    click(page, "top/banner_btn")
    wait_for(page, lambda: page.get_by_role("tab", name="4 · Train").get_attribute("aria-selected") == "true", 10,
             "the Train tab")
    wait_for(page, lambda: progress_attr(page, "data-state") == "finished", 300, "the run to finish")
    progress = text_of(page, "train/progress")
    assert f"step {STEPS} / {STEPS}" in progress and "left" not in progress and "elapsed" in progress
    assert "series" not in text_of(page, "train/plot_lr")  # one series: no legend titled "series"
    assert run_name in value_of(page, "train/runs") or "finished" in page.locator(sel("train/runs")).inner_text()
    wait_for(page, lambda: not page.locator(sel("top/banner_row")).is_visible(), 20, "the banner to go")
    shot(page, "first_user_train")

    # ---- item 10: every tab and an error in Chinese, no English word outside names, paths and commands
    choose(page, "top/lang", "简体中文")
    wait_for(page, lambda: page.get_by_role("tab", name=TABS_ZH[3]).count(), 20, "Chinese tab labels")
    page.wait_for_timeout(2500)  # one timer tick: progress and plots in Chinese
    open_tab(page, TABS_ZH[0])
    # the statistics table and histogram axes in Chinese (checked here: the error step below clears them)
    click(page, "data/preview_btn")
    wait_for(page, lambda: "行数" in text_of(page, "data/stats"), 90, "the statistics table in Chinese")
    stats_words = english_words(text_of(page, "data/stats") + "\n" + text_of(page, "data/hist"))
    assert not stats_words, sorted(stats_words)
    fill(page, "data.path", home / "nope.json")
    wait_text(page, "data/status", "错误：", 30)
    leftovers = {}
    for tab in TABS_ZH:
        open_tab(page, tab)
        page.wait_for_timeout(800)
        body = page.evaluate(UI_TEXT_JS, [sel(i) for i in CONTENT])
        words = english_words(body)
        if words:
            leftovers[tab] = sorted(words)
        shot(page, f"first_user_zh_{TABS_ZH.index(tab) + 1}")
    (Path(__file__).resolve().parent.parent / "test-artifacts" / "first_user_zh_words.json").write_text(
        json.dumps(leftovers, ensure_ascii=False, indent=1))
    assert not leftovers, json.dumps(leftovers, ensure_ascii=False)
