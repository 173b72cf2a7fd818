"""Studio latency as a user feels it, in headless Chromium (Playwright) against ``launch.py`` on 127.0.0.1.

    .venv/bin/python bench/studio_latency.py [--repeats 3] [--json out.json]

Measures launch to first page, idle RSS of the app process, each tab usable after a click, the data
preview (first and later), the Method tab's estimate update after a batch-size change, and the language
switch; then times the estimate callback in-process (cProfile's top entries with --profile). Each figure
is printed next to its target with the load average, since a loaded machine makes everything slower.
Every wait is bounded; the app and the browser are stopped at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser_helpers import CHROMIUM, CHROMIUM_ARGS, AppProcess, fill, sel  # noqa: E402

TABS = [("1 · Data", "data.path"), ("2 · Model", "model/preset"), ("3 · Method", "method/memory"),
        ("4 · Train", "train/start_btn"), ("5 · Export", "export/btn"), ("6 · Chat", "chat/send_btn")]
TARGETS = {"tab": 1.0, "estimate": 0.3}  # seconds, on a quiet machine (issue 12)
WAIT_S = 30.0


def wait_until(page, predicate, what: str, timeout_s: float = WAIT_S) -> float:
    """Seconds until ``predicate()`` is true, polling every 20 ms; bounded."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        page.wait_for_timeout(20)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f}s")


def idle(page) -> bool:
    """No gradio event pending (no progress overlay on any component)."""
    return page.locator(".wrap.pending, .wrap.generating, .eta-bar").count() == 0


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def tab_usable(page, label: str, elem_id: str) -> float:
    """Click a tab; seconds until its key widget is visible and no event is pending."""
    start = time.monotonic()
    page.get_by_role("tab", name=label).click()
    wait_until(page, lambda: page.locator(sel(elem_id)).first.is_visible() and idle(page), f"tab {label}", 120)
    return time.monotonic() - start


# In the page: the time of the batch-size box's last "input" event and of the memory bar's next new total,
# so the figure is what a user waits for, without the automation's own typing and actionability checks
# (those took 0.15-0.6 s of the 0.5-0.7 s this bench used to report).
_WATCH_ESTIMATE = """([box, bar]) => {
  window.__est = {start: null, done: null, total: bar.getAttribute('data-total')};
  box.addEventListener('input', () => { window.__est.start = performance.now(); window.__est.done = null; });
  new MutationObserver(() => {
    const now = bar.isConnected ? bar : document.querySelector('%s .ts-memory');
    if (now && now.getAttribute('data-total') !== window.__est.total && window.__est.start !== null) {
      window.__est.total = now.getAttribute('data-total');
      window.__est.done = performance.now();
    }
  }).observe(document.querySelector('%s'), {subtree: true, childList: true, attributes: true});
}"""


def estimate_update(page, batch: int) -> tuple[float, float]:
    """Type a batch size on the Method tab; (seconds from the box's input event to the memory bar's new
    total in the page, seconds the whole automated step took)."""
    memory = page.locator(f"{sel('method/memory')} .ts-memory").first
    box = page.locator(f"{sel('training.batch_size')} input").first
    before = memory.get_attribute("data-total")
    root = sel("method/memory")
    page.evaluate(_WATCH_ESTIMATE % (root, root), [box.element_handle(), memory.element_handle()])
    start = time.monotonic()
    fill(page, "training.batch_size", batch)
    wait_until(page, lambda: memory.get_attribute("data-total") != before
               and page.evaluate("window.__est.done !== null"), "estimate update")
    in_page = page.evaluate("(window.__est.done - window.__est.start) / 1000")
    return in_page, time.monotonic() - start


def preview(page, path: str) -> float:
    """Type a data path (which takes the last statistics away), then Preview: seconds until the table shows."""
    page.get_by_role("tab", name="1 · Data").click()
    stats = page.locator(sel("data/stats")).first
    fill(page, "data.path", path)
    wait_until(page, lambda: "rows" not in stats.inner_text() and idle(page), "the old statistics to go")
    start = time.monotonic()
    page.locator(sel("data/preview_btn")).first.click()
    wait_until(page, lambda: "kept" in stats.inner_text(), "preview", 120)
    return time.monotonic() - start


def lang_switch(page, option: str, tab: str) -> float:
    start = time.monotonic()
    page.locator(f"{sel('top/lang')} input").first.click()
    page.get_by_role("option", name=option, exact=True).first.click()
    wait_until(page, lambda: page.get_by_role("tab", name=tab).count() > 0 and idle(page), f"language {option}")
    return time.monotonic() - start


def estimate_in_process(repeats: int, profile: bool) -> dict:
    """The estimate callback alone (no browser, no network): what the server spends per update."""
    import cProfile
    import io
    import pstats

    from tunesmith.app.callbacks import method_cb
    from tunesmith.app.form import gui_default_config, values_from_config

    values = {**values_from_config(gui_default_config()), "top/lang": "en", "method/gpu_gb": "8"}
    first = time.monotonic()
    method_cb.estimate(values)
    first = time.monotonic() - first
    times = []
    prof = cProfile.Profile() if profile else None
    for i in range(repeats):
        values["training.batch_size"] = 2 + i
        start = time.monotonic()
        if prof:
            prof.enable()
        method_cb.estimate(values)
        if prof:
            prof.disable()
        times.append(time.monotonic() - start)
    out = {"estimate_callback_first_s": first, "estimate_callback_s": statistics.median(times)}
    if prof:
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(15)
        out["profile"] = text.getvalue()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="rounds of tab clicks / estimate updates (default 3)")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top entries of the estimate callback")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    figures: dict = {"load_avg_start": os.getloadavg(), "cpus": os.cpu_count()}
    home = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    start = time.monotonic()
    app = AppProcess(home)
    figures["http_ready_s"] = app.ready_s
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--lang=en-US"])
            try:
                page = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US").new_page()
                page.goto(app.url)
                wait_until(page, lambda: page.locator(sel("data.path")).first.is_visible() and idle(page),
                           "first page", 120)
                figures["launch_to_first_page_s"] = time.monotonic() - start
                page.wait_for_timeout(3000)
                figures["idle_rss_mb"] = rss_mb(app.proc.pid)
                tabs: dict[str, list[float]] = {label: [] for label, _ in TABS}
                for _ in range(args.repeats):
                    for label, elem_id in TABS:
                        tabs[label].append(tab_usable(page, label, elem_id))
                figures["tab_usable_s"] = {k: max(v) for k, v in tabs.items()}
                figures["tab_first_s"] = {k: v[0] for k, v in tabs.items()}  # cold: the first visit imports
                page.get_by_role("tab", name="3 · Method").click()
                wait_until(page, lambda: page.locator(f"{sel('method/memory')} .ts-memory").count() > 0,
                           "first estimate")
                updates = [estimate_update(page, 2 + i) for i in range(args.repeats)]
                figures["estimate_update_s"] = [u[0] for u in updates]
                figures["estimate_update_automated_s"] = [u[1] for u in updates]
                demos = [ROOT / "tunesmith" / "assets" / "identity.json", ROOT / "tunesmith" / "assets" / "colors.jsonl"]
                figures["preview_s"] = [preview(page, str(p)) for p in demos]
                figures["lang_switch_s"] = [lang_switch(page, "简体中文", "4 · 训练"),
                                            lang_switch(page, "English", "4 · Train")]
            finally:
                browser.close()
    finally:
        app.stop()
    figures.update(estimate_in_process(args.repeats, args.profile))
    figures["load_avg_end"] = os.getloadavg()
    report(figures)
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in figures.items() if k != "profile"}, indent=1))
    return 0


def report(f: dict) -> None:
    def line(name: str, value: str, target: str = "") -> None:
        print(f"{name:<34} {value:<26} {target}")

    print(f"load average {f['load_avg_start'][0]:.1f} at start, {f['load_avg_end'][0]:.1f} at end "
          f"({f['cpus']} CPUs)")
    line("launch to HTTP 200", f"{f['http_ready_s']:.1f} s")
    line("launch to first page (usable)", f"{f['launch_to_first_page_s']:.1f} s")
    line("idle RSS (app process)", f"{f['idle_rss_mb']:.0f} MB")
    for tab, s in f["tab_usable_s"].items():
        line(f"tab {tab} usable (first, worst)", f"{f['tab_first_s'][tab]:.2f} s, {s:.2f} s",
             f"target <= {TARGETS['tab']:.1f} s quiet")
    est = f["estimate_update_s"]
    line("estimate update (median, worst)", f"{statistics.median(est):.2f} s, {max(est):.2f} s",
         f"target <= {TARGETS['estimate']:.1f} s quiet")
    auto = f["estimate_update_automated_s"]
    line("  the automated step (median)", f"{statistics.median(auto):.2f} s (typing, Tab, waiting included)")
    line("  of which the callback (median)", f"{f['estimate_callback_s']:.3f} s "
         f"(first {f['estimate_callback_first_s']:.2f} s)")
    line("preview (first, again)", f"{f['preview_s'][0]:.2f} s, {f['preview_s'][1]:.2f} s")
    line("language switch (zh, en)", f"{f['lang_switch_s'][0]:.2f} s, {f['lang_switch_s'][1]:.2f} s")
    if f.get("profile"):
        print(f["profile"])


if __name__ == "__main__":
    raise SystemExit(main())
