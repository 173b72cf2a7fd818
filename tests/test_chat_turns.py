"""Turns between generating conversations: one step at a time, first come first served, no one starves."""

from __future__ import annotations

import threading

from tunesmith.core.chat.turns import Turns


def test_three_generations_take_steps_in_strict_rotation():
    turns, order, ready = Turns(), [], threading.Barrier(3)
    first_in = threading.Event()

    def generate(name: str):
        ready.wait()
        if name != "a":
            first_in.wait()  # "a" gets the turn first; b and c queue behind it in any order
        with turns.held():
            first_in.set()
            while turns.waiting < 2 and name == "a" and len(order) == 0:
                pass  # a's first step starts once both others are queued
            for _ in range(4):
                order.append(name)
                turns.pass_on()

    threads = [threading.Thread(target=generate, args=(n,), daemon=True) for n in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(order) == 12
    assert order[0] == "a"
    rounds = [order[i:i + 3] for i in range(0, 12, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds), order  # every round: each once
    assert all(r == rounds[0] for r in rounds), order                # and always in the same order


def test_alone_the_holder_keeps_its_turn_and_a_failure_releases_it():
    turns = Turns()
    try:
        with turns.held():
            turns.pass_on()
            assert turns.waiting == 0
            raise RuntimeError("generation failed")
    except RuntimeError:
        pass
    got = threading.Event()
    t = threading.Thread(target=lambda: (turns.acquire(), got.set(), turns.release()))
    t.start()
    assert got.wait(5), "a failed generation kept the turn"
    t.join()


def test_engine_generations_interleave_token_by_token(tiny_model_dir):
    """Two conversations streaming at once both make progress before either finishes."""
    from tunesmith.core.chat import ChatEngine, GenerationSettings

    engine = ChatEngine.load(str(tiny_model_dir), device="cpu")
    sessions = [engine.new_session() for _ in range(2)]
    events: list[tuple[int, int]] = []
    lock = threading.Lock()

    def talk(i: int):
        sessions[i].settings = GenerationSettings(temperature=0, max_new_tokens=60)
        for n, _ in enumerate(sessions[i].stream(f"Conversation {i}: name a colour.")):
            with lock:
                events.append((i, n))

    threads = [threading.Thread(target=talk, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(s.last.new_tokens > 10 for s in sessions), [s.last for s in sessions]
    last_of = {i: max(k for k, (j, _) in enumerate(events) if j == i) for i in range(2)}
    first_of = {i: min(k for k, (j, _) in enumerate(events) if j == i) for i in range(2)}
    assert first_of[0] < last_of[1] and first_of[1] < last_of[0], "one answer ran to the end before the other began"
