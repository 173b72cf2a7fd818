"""`python -m tunesmith serve`: the OpenAI-compatible API, driven by the official openai client on 127.0.0.1."""

from __future__ import annotations

import threading

import pytest

openai = pytest.importorskip("openai")

QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from tunesmith.core.chat import GenerationSettings
    from tunesmith.core.serve import load_backend

    return load_backend(str(tiny_model_dir), model_id="tiny", settings=GenerationSettings(max_new_tokens=12))


@pytest.fixture(scope="module")
def server(backend):
    from tunesmith.core.serve import start_server

    running = start_server(backend, host="127.0.0.1", port=0)
    yield running
    running.stop()
    assert not running.thread.is_alive()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)


def _engine_answer(tiny_model_dir, messages, max_new_tokens=12):
    from tunesmith.core.chat import ChatEngine, GenerationSettings

    engine = ChatEngine.load(str(tiny_model_dir), settings=GenerationSettings(temperature=0,
                                                                              max_new_tokens=max_new_tokens))
    session = engine.new_session(system=messages[0]["content"])
    return session.chat(messages[-1]["content"]), session.last


def test_models_lists_the_served_model(client, server):
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert client.models.retrieve("tiny").owned_by == "tunesmith"


def test_greedy_chat_equals_the_chat_engine_streamed_and_not(client, tiny_model_dir):
    expected, info = _engine_answer(tiny_model_dir, QUESTION)
    assert expected.strip()
    reply = client.chat.completions.create(model="tiny", messages=QUESTION, temperature=0, max_tokens=12)
    assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == ("length" if info.stop_reason == "max_new_tokens" else "stop")
    assert reply.usage.prompt_tokens == info.prompt_tokens and reply.usage.completion_tokens == info.new_tokens

    chunks = list(client.chat.completions.create(model="tiny", messages=QUESTION, temperature=0, max_tokens=12,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [reply.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == info.new_tokens and chunks[-1].choices == []


def test_two_clients_at_once_get_their_own_answers(server, tiny_model_dir):
    questions = ["Tell me about cats.", "Name a colour."]
    expected = [_engine_answer(tiny_model_dir, [{"role": "system", "content": ""}, {"role": "user", "content": q}])[0]
                for q in questions]
    got: dict = {}

    def ask(i):
        c = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=120)
        stream = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": questions[i]}],
                                           temperature=0, max_tokens=12, stream=True)
        got[i] = "".join(ch.choices[0].delta.content or "" for ch in stream)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [got.get(i) for i in range(2)] == expected


def test_sampling_with_a_seed_repeats_and_completions_work(client):
    kwargs = dict(model="tiny", messages=QUESTION, temperature=1.0, top_p=1.0, max_tokens=10, seed=7)
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    assert client.chat.completions.create(**kwargs).choices[0].message.content == first

    plain = client.completions.create(model="tiny", prompt="The capital of France is", temperature=0, max_tokens=8)
    assert plain.object == "text_completion" and plain.usage.completion_tokens > 0
    streamed = client.completions.create(model="tiny", prompt="The capital of France is", temperature=0, max_tokens=8,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == plain.choices[0].text


def test_bad_requests_get_openai_error_bodies(client, server):
    import httpx

    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="tiny", messages=QUESTION, temperature=5)
    assert bad.value.status_code == 400
    assert bad.value.body["param"] == "temperature" and "between 0 and 2" in bad.value.body["message"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert missing.value.body["code"] == "model_not_found" and "'tiny'" in missing.value.body["message"]
    with pytest.raises(openai.BadRequestError) as order:
        client.chat.completions.create(model="tiny", messages=[{"role": "assistant", "content": "Hi"}])
    assert "last message must come from the user" in order.value.body["message"]
    with pytest.raises(openai.BadRequestError) as n:
        client.chat.completions.create(model="tiny", messages=QUESTION, n=2)
    assert n.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as long:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "word " * 3000}])
    assert long.value.body["code"] == "context_length_exceeded"

    raw = httpx.post(f"{server.url}/chat/completions", content=b"{not json", timeout=10)
    assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{server.url}/nothing", timeout=10).json()["error"]["code"] == "not_found"


def test_api_key_is_required_and_checked(backend):
    from tunesmith.core.serve import start_server

    running = start_server(backend, host="127.0.0.1", port=0, api_key="s3cret-key")
    try:
        wrong = openai.OpenAI(base_url=running.url, api_key="wrong", max_retries=0, timeout=30)
        with pytest.raises(openai.AuthenticationError) as refused:
            wrong.models.list()
        assert refused.value.status_code == 401
        assert refused.value.body == {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                      "param": None, "code": "invalid_api_key"}
        right = openai.OpenAI(base_url=running.url, api_key="s3cret-key", max_retries=0, timeout=30)
        assert [m.id for m in right.models.list().data] == ["tiny"]
    finally:
        running.stop()


def test_other_hosts_need_a_key(backend, monkeypatch):
    from tunesmith.core.errors import UserError
    from tunesmith.core.serve import start_server
    from tunesmith.core.serve.exposure import resolve_api_key

    with pytest.raises(UserError, match="without an API key"):
        start_server(backend, host="0.0.0.0", port=0)
    monkeypatch.setenv("TUNESMITH_API_KEY", "from-env")
    assert resolve_api_key(None) == "from-env" and resolve_api_key("flag") == "flag"


def test_cli_refuses_an_exposed_host_without_a_key_before_loading(capsys):
    from tunesmith.core.cli import main

    assert main(["serve", "/no/such/model", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0 without an API key" in err and "Fix: Add --api-key" in err
