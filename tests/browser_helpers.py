"""Start the studio as a subprocess and drive it in headless Chromium (used by tests/test_browser_*.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("TUNESMITH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TUNESMITH_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _share_embedded_model(home: Path) -> None:
    """Link the per-user import of the bundled model into a test's home: the app imports it in the
    background at start, about 25 s of CPU per home that would slow every other test running meanwhile."""
    from tunesmith.core import paths
    from tunesmith.core.gguf_import import ensure_embedded_model

    target = home / "models" / paths.EMBEDDED_MODEL_NAME
    if paths.embedded_gguf_path() is None or target.exists():
        return
    shared = ensure_embedded_model()  # once per machine (file-locked), then every test home links it
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(shared, target_is_directory=True)


class AppProcess:
    """``python launch.py --port P`` with its own TUNESMITH_HOME; ``ready_s`` is the time to HTTP 200."""

    def __init__(self, home: Path, *extra: str):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = home / "app.log"
        _share_embedded_model(home)
        env = dict(os.environ, TUNESMITH_HOME=str(home), PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False")
        self._log = open(self.log_path, "w")
        started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "--port", str(self.port), *extra],
                                     cwd=str(ROOT), env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.ready_s = self._wait_ready(started)

    def _wait_ready(self, started: float, timeout: float = 90) -> float:
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the app did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def kill_runs(home: Path) -> None:
    """End every training still running under ``home``/runs (runs outlive the app by design)."""
    from tunesmith.core.train.launcher import attach, list_runs

    for run in list_runs(home / "runs"):
        if run["state"] in ("starting", "running", "stopping"):
            attach(run["run_dir"]).kill()


# ---- page helpers (gradio 6 DOM: elem_id sits on the component's outer block) ----------------

def sel(elem_id: str) -> str:
    """CSS selector of a registered widget, e.g. ``training.max_steps`` -> ``#ts-training-max_steps``."""
    return "#ts-" + elem_id.replace(".", "-").replace("/", "-")


def fill(page, elem_id: str, value, *, enter: bool = False) -> None:
    box = page.locator(f"{sel(elem_id)} textarea, {sel(elem_id)} input").first
    box.fill(str(value))
    box.press("Enter" if enter else "Tab")


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"{sel(elem_id)} input").first.click()
    page.get_by_role("option", name=option, exact=True).first.click()


def click(page, elem_id: str) -> None:
    page.locator(sel(elem_id)).first.click()


def open_accordion(page, elem_id: str) -> None:
    """Unfold a folded section (its content is not in the page until then)."""
    page.locator(f"{sel(elem_id)} button").first.click()
    page.wait_for_timeout(300)


def open_tab(page, label: str) -> None:
    page.get_by_role("tab", name=label).click()
    page.wait_for_timeout(500)


def text_of(page, elem_id: str) -> str:
    return page.locator(sel(elem_id)).first.inner_text()


def value_of(page, elem_id: str) -> str:
    """The value of a text box / drop-down (inner_text does not include it)."""
    box = page.locator(f"{sel(elem_id)} textarea, {sel(elem_id)} input")
    return box.first.input_value() if box.count() else ""


def wait_text(page, elem_id: str, needle: str, timeout_s: float = 60) -> str:
    """Wait until the widget's visible text (or its box's value) contains ``needle``; return it."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        loc = page.locator(sel(elem_id))
        if loc.count():
            last = loc.first.inner_text() + "\n" + value_of(page, elem_id)
            if needle in last:
                return last
        page.wait_for_timeout(300)
    raise AssertionError(f"{elem_id} never showed {needle!r}; last text: {last[-600:]!r}")


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# Records in the page itself when each answer's text changes (polling from here is far too coarse to see
# a stream): window.__answers[n] = {first, last (ms since epoch), texts (distinct texts seen)}.
WATCH_JS = """(selector) => {
  const box = document.querySelector(selector);
  window.__answers = {};
  const seen = () => {
    const bots = box.querySelectorAll("[data-testid='bot']");
    if (!bots.length) return;
    const n = bots.length - 1, text = bots[n].innerText, now = Date.now();
    const a = window.__answers[n] || (window.__answers[n] = {first: now, last: now, texts: []});
    if (a.texts[a.texts.length - 1] !== text) { a.texts.push(text); a.last = now; }
  };
  new MutationObserver(seen).observe(box, {subtree: true, childList: true, characterData: true});
}"""


def watch_answers(page, box: str = "chat/bot") -> None:
    """Start recording every change of the chat box's answers (see WATCH_JS)."""
    page.evaluate(WATCH_JS, sel(box))


def answer_seen(page, n: int) -> dict | None:
    """What the page saw of answer n: {first, last, texts}, or None before it started."""
    return page.evaluate(f"() => window.__answers[{n}] || null")
