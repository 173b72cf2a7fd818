"""ChatEngine on the tiny model: streaming, stop words, cancel, concurrency, A/B, context trimming."""

from __future__ import annotations

import threading

import pytest
from test_export_helpers import make_lora_run

GREEDY = dict(temperature=0, max_new_tokens=24)


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from tunesmith.core.chat import ChatEngine, GenerationSettings

    return ChatEngine.load(str(tiny_model_dir), template="chat_template", settings=GenerationSettings(**GREEDY))


@pytest.fixture(scope="module")
def lora_engine(tmp_path_factory, tiny_model_dir):
    from tunesmith.core.chat import ChatEngine, GenerationSettings

    run_dir, _ = make_lora_run(tmp_path_factory.mktemp("chat-lora") / "run", tiny_model_dir, steps=(2,))
    return ChatEngine.load(str(run_dir), settings=GenerationSettings(**GREEDY))


def settings(**changes):
    from tunesmith.core.chat import GenerationSettings

    return GenerationSettings(**GREEDY).replace(**changes)


def test_streaming_deltas_join_to_the_non_streamed_answer(engine):
    deltas = list(engine.new_session().stream("Tell me about the sea."))
    whole = engine.new_session().chat("Tell me about the sea.")
    assert len(deltas) > 1
    assert "".join(deltas) == whole and whole.strip()


@pytest.mark.slow  # several answers: the fast tier keeps the cheaper tests of the same code
def test_history_is_kept_and_reset(engine):
    session = engine.new_session(system="Be brief.")
    first = session.chat("One")
    session.chat("Two")
    assert [m["content"] for m in session.history] == ["One", first, "Two", session.last.text]
    assert session.messages()[0] == {"role": "system", "content": "Be brief."}
    session.reset()
    assert session.history == []
    assert session.chat("One") == first


def test_stop_word_ends_the_answer(engine):
    full = engine.new_session(settings=settings(max_new_tokens=40)).chat("Count to ten.")
    word = full[len(full) // 2: len(full) // 2 + 4]
    assert word.strip()
    expected = full[: full.find(word)]
    for streamed in (False, True):
        session = engine.new_session(settings=settings(max_new_tokens=40, stop_words=[word]))
        text = "".join(session.stream("Count to ten.")) if streamed else session.chat("Count to ten.")
        assert text == expected
        assert session.last.stop_reason == "stop_word" and session.last.new_tokens < 40


def test_template_stop_words_become_eos_ids(lora_engine, tokenizer):
    assert lora_engine.template == "internlm2_chat"
    words = lora_engine.stop_words(lora_engine.template, ["###"])
    assert words[0] == "<|im_end|>" and "###" in words
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in lora_engine.eos_ids(words)


def test_cancel_stops_within_a_few_tokens(engine):
    session = engine.new_session(settings=settings(max_new_tokens=400))
    stream = session.stream("Write a long story.")
    received = [next(stream)]
    session.cancel()
    received += list(stream)
    info = session.last
    assert info.stop_reason == "cancelled"
    assert info.tokens_at_cancel is not None and info.new_tokens - info.tokens_at_cancel <= 3
    assert info.new_tokens < 100
    assert session.history[-1]["content"] == "".join(received)  # the partial answer is kept
    assert not session.busy


def _run_concurrently(sessions, questions):
    answers = {i: [] for i in range(len(sessions))}
    errors = []
    barrier = threading.Barrier(len(sessions))

    def talk(i):
        try:
            barrier.wait()
            for question in questions[i]:
                answers[i].append("".join(sessions[i].stream(question)))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return answers


@pytest.mark.slow  # eight generating threads: the fast tier keeps the cheaper tests of the same code
def test_eight_concurrent_sessions_keep_separate_histories(engine):
    questions = {i: [f"Question {i} about topic {i * 7}.", f"And a follow-up {i}?"] for i in range(8)}
    expected = {}
    for i in range(8):  # the same conversations one at a time
        session = engine.new_session(settings=settings(max_new_tokens=10))
        expected[i] = [session.chat(q) for q in questions[i]]
    sessions = [engine.new_session(settings=settings(max_new_tokens=10)) for _ in range(8)]
    answers = _run_concurrently(sessions, questions)
    for i, session in enumerate(sessions):
        assert answers[i] == expected[i]
        assert [m["content"] for m in session.history if m["role"] == "user"] == questions[i]
    assert len({tuple(a) for a in answers.values()}) > 1


def test_ab_adapter_on_and_off(lora_engine, tiny_model_dir):
    from tunesmith.core.chat import ChatEngine

    plain = ChatEngine(lora_engine.model.get_base_model(), lora_engine.tokenizer, template="internlm2_chat",
                       settings=settings())
    answers = lora_engine.compare("Hello!")
    assert answers["adapter"] != answers["base"]
    assert answers["adapter"] == lora_engine.new_session().chat("Hello!")
    with lora_engine.model.disable_adapter():
        assert answers["base"] == plain.new_session().chat("Hello!")

    # adapter-on and adapter-off conversations streaming at the same time do not leak into each other
    sessions = [lora_engine.new_session(use_adapter=i % 2 == 0, settings=settings(max_new_tokens=8)) for i in range(6)]
    answers_now = _run_concurrently(sessions, {i: ["Hello!"] for i in range(6)})
    for i in range(6):
        expected = answers["adapter"] if i % 2 == 0 else answers["base"]
        assert answers_now[i][0] == expected[: len(answers_now[i][0])] and answers_now[i][0]


def test_history_is_trimmed_to_the_context(tiny_model_dir, engine):
    from tunesmith.core.chat import ChatEngine
    from tunesmith.core.errors import UserError

    small = ChatEngine(engine.model, engine.tokenizer, template="chat_template", max_context=160,
                       settings=settings(max_new_tokens=16))
    session = small.new_session()
    for i in range(6):
        session.chat(f"Message number {i}: " + "words " * 12)
    assert session.last.trimmed_turns >= 1
    assert session.last.prompt_tokens <= 160 - 16
    assert session.history[-2]["content"].startswith("Message number 5")
    assert not any(m["content"].startswith("Message number 0") for m in session.history)
    with pytest.raises(UserError, match="tokens"):
        session.chat("long " * 400)
    assert not session.busy


@pytest.mark.slow  # several sampled answers: the fast tier keeps the cheaper tests of the same code
def test_seeded_sampling_is_reproducible_per_session(engine):
    a = engine.new_session(settings=settings(temperature=0.9, top_k=0, top_p=1.0, seed=5)).chat("Pick a word.")
    b = engine.new_session(settings=settings(temperature=0.9, top_k=0, top_p=1.0, seed=5)).chat("Pick a word.")
    session = engine.new_session(settings=settings(temperature=0.9, top_k=0, top_p=1.0, seed=6))
    c = session.chat("Pick a word.")
    assert a == b and a != c
    session.history = []
    session.settings = settings(temperature=0.9, top_k=0, top_p=1.0, seed=5)  # as the GUI sets it
    assert session.chat("Pick a word.") == a


@pytest.mark.parametrize("field,value", [("top_p", 1.5), ("temperature", -1), ("max_new_tokens", 0),
                                         ("repetition_penalty", 0), ("top_k", -3)])
def test_out_of_range_settings_are_refused(field, value):
    from tunesmith.core.errors import UserError

    with pytest.raises(UserError, match=field):
        settings(**{field: value})


def test_four_bit_loading_on_cpu(tiny_model_dir):
    from tunesmith.core.chat import ChatEngine

    engine = ChatEngine.load(str(tiny_model_dir), template="chat_template", bits=4,
                             settings=settings(max_new_tokens=6))
    assert getattr(engine.model, "is_quantized", False)
    assert engine.new_session().chat("Hi").strip()


def test_session_template_auto_and_unknown(engine):
    from tunesmith.core.errors import UserError

    assert engine.new_session(template="auto").template == engine.template
    session = engine.new_session(template="internlm2_chat")
    assert session.template == "internlm2_chat"
    with pytest.raises(UserError, match="Did you mean: internlm2_chat"):
        session.template = "internlm2chat"
    assert session.template == "internlm2_chat"


def test_merged_folder_and_full_checkpoint_bring_their_template(lora_engine, tiny_model_dir, tmp_path):
    from test_export_helpers import make_full_run

    from tunesmith.core.chat import ChatEngine
    from tunesmith.core.export import merge_adapter

    merged = merge_adapter(str(tiny_model_dir), lora_engine.label, tmp_path / "merged", dtype="fp32")
    engine = ChatEngine.load(str(merged), settings=settings())
    assert engine.template == "internlm2_chat" and not engine.has_adapter
    assert engine.new_session().chat("Hello!") == lora_engine.new_session().chat("Hello!")

    run_dir, _ = make_full_run(tmp_path / "full", tiny_model_dir)
    full = ChatEngine.load(str(run_dir / "checkpoints" / "checkpoint-3"), settings=settings(max_new_tokens=4))
    assert full.template == "internlm2_chat" and full.new_session().chat("Hi").strip()
