"""Benchmark: eight conversations streaming at once from one loaded model, with and without turns.

Each session generates in its own thread (as eight browser tabs do). "Free-for-all" lets all eight
threads run generate() at once; "turns" (tunesmith.core.chat.turns, what the app uses) lets one generation step
run at a time, first come first served. Printed: total wall time for every answer, and the median and
99th-percentile gap between two tokens of one answer. Ratios > 1 mean turns are faster.

    python bench/chat_concurrency.py [--sessions 8] [--tokens 200] [--rounds 2] [--model DIR]

Without --model it builds the tests' tiny random Llama (2 layers, width 64, SmolLM2 vocabulary).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class FreeForAll:
    """The Turns interface doing nothing: every thread generates whenever it likes."""

    waiting = 0

    def pass_on(self) -> None:
        pass

    def held(self):
        return nullcontext()


def one_round(engine, sessions: int, tokens: int) -> tuple[float, list[float]]:
    from tunesmith.core.chat import GenerationSettings

    convs = [engine.new_session() for _ in range(sessions)]
    gaps: list[float] = []
    lock = threading.Lock()

    def talk(i: int) -> None:
        convs[i].settings = GenerationSettings(temperature=0, max_new_tokens=tokens)
        last = time.monotonic()
        for _ in convs[i].stream(f"Question {i}: which colour comes after blue?"):
            now = time.monotonic()
            with lock:
                gaps.append(now - last)
            last = now

    t0 = time.monotonic()
    threads = [threading.Thread(target=talk, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0, gaps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model", default="", help="a model folder (default: a tiny random Llama)")
    args = ap.parse_args()

    from tunesmith.core.chat import ChatEngine
    from tunesmith.core.chat.turns import Turns

    model = args.model
    if not model:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from tiny import make_tiny_llama

        from tunesmith.core.gguf_import import ensure_embedded_tokenizer

        model = str(make_tiny_llama(Path(tempfile.mkdtemp()) / "tiny", ensure_embedded_tokenizer()))
    engine = ChatEngine.load(model, device="cpu")
    one_round(engine, 2, 8)  # warm-up

    results: dict[str, list[tuple[float, list[float]]]] = {"free-for-all": [], "turns": []}
    for _ in range(args.rounds):  # alternate, so a busy moment of the machine hits both
        for name, turns in (("free-for-all", FreeForAll()), ("turns", Turns())):
            engine._turns = turns
            results[name].append(one_round(engine, args.sessions, args.tokens))

    summary = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        gaps = sorted(g for r in runs for g in r[1])
        summary[name] = (wall, gaps[len(gaps) // 2], gaps[int(len(gaps) * 0.99)])
        print(f"{name:>13}: {args.sessions} answers x {args.tokens} tokens in {wall:.2f}s; token gap median "
              f"{summary[name][1] * 1000:.1f} ms, p99 {summary[name][2] * 1000:.1f} ms")
    free, turns = summary["free-for-all"], summary["turns"]
    print(f"ratio free-for-all/turns: wall {free[0] / turns[0]:.2f}x, median gap {free[1] / turns[1]:.2f}x, "
          f"p99 gap {free[2] / turns[2]:.2f}x")


if __name__ == "__main__":
    main()
