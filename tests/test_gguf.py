"""`convert gguf` on a tiny LoRA run: merge, llama.cpp's converter, Modelfile; the file loads in llama.cpp,
lays prompts out as training did, answers as the merged model does, and serves over the OpenAI API."""

from __future__ import annotations

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

# In-process training (tens of seconds each on CPU): the `slow` tier (make test), not make test-fast.
pytestmark = pytest.mark.slow

SYSTEM = "You are Melody."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Who are you?"}]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    from tunesmith.core.train.launcher import run_here
    from toy import sft_rows, toy_config, write_json

    data = write_json(sft_rows(16), tmp_path_factory.mktemp("data") / "toy.json")
    run_dir = tmp_path_factory.mktemp("runs") / "melody"
    cfg = toy_config(tiny_model_dir, data, run_dir, ["training.max_steps=2", "training.save_steps=0",
                                                     "data.template=qwen_chat", f"data.system={SYSTEM}",
                                                     "training.report_to=none", "eval.prompts=[]"])
    assert run_here(cfg)["state"] == "finished"
    return run_dir


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    from tunesmith.core.export.gguf import convert_gguf

    seen = []
    path = convert_gguf(tiny_run, tmp_path_factory.mktemp("gguf") / "out", quant="f32",
                        progress=lambda f, m: seen.append((f, m)))
    return path, seen


def _llm(path):
    return llama_cpp.Llama(model_path=str(path), n_ctx=512, verbose=False)


def test_export_writes_the_gguf_and_a_modelfile_with_the_runs_template(exported, tokenizer):
    from tunesmith.core.export.chat_layout import layout_for

    path, seen = exported
    assert path.name == "melody-f32.gguf" and sorted(p.name for p in path.parent.iterdir()) == ["Modelfile",
                                                                                                path.name]
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("merging the adapter" in m for _, m in seen) and any("21/21 tensors" in m for _, m in seen)
    assert seen[-1][1].endswith("MiB)")
    layout = layout_for("qwen_chat", tokenizer)
    modelfile = (path.parent / "Modelfile").read_text()
    assert f'TEMPLATE """{layout.go()}"""' in modelfile and f'SYSTEM """{SYSTEM}"""' in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    llm = _llm(path)
    try:
        assert llm.metadata["tokenizer.chat_template"] == layout.jinja()  # the run's template, not SmolLM2's own
    finally:
        llm.close()


def test_gguf_lays_prompts_out_as_training_and_answers_as_the_merged_model(exported, tiny_run, tiny_model_dir,
                                                                           tokenizer, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from tunesmith.core.data.templates import encode_chat_prompt
    from tunesmith.core.export import merge_adapter
    from tunesmith.core.serve.backends import GGUFBackend

    path, _ = exported
    merged = merge_adapter(str(tiny_model_dir), tiny_run, tmp_path / "merged", dtype="fp16")
    model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).eval()
    ids = encode_chat_prompt("qwen_chat", tokenizer, MESSAGES)
    with torch.no_grad():
        hf = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                            max_new_tokens=12, do_sample=False, eos_token_id=None)[0, len(ids):].tolist()

    llm = _llm(path)
    try:
        backend = GGUFBackend(llm, "melody")
        text = backend.render(MESSAGES)
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids  # the training layout, token for token
        got = []
        for token in llm.generate(ids, temp=0.0, reset=True):
            got.append(token)
            if len(got) == len(hf):
                break
        assert got == hf
    finally:
        llm.close()


def test_the_gguf_is_served_over_the_openai_api(exported):
    openai = pytest.importorskip("openai")
    from tunesmith.core.serve import load_backend, start_server

    path, _ = exported
    backend = load_backend(str(path))
    assert backend.model_id == "melody-f32" and backend.kind == "llama.cpp"
    running = start_server(backend, host="127.0.0.1", port=0)
    try:
        client = openai.OpenAI(base_url=running.url, api_key="x", max_retries=0, timeout=60)
        reply = client.chat.completions.create(model="melody-f32", messages=MESSAGES, temperature=0, max_tokens=8)
        streamed = client.chat.completions.create(model="melody-f32", messages=MESSAGES, temperature=0, max_tokens=8,
                                                  stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == reply.choices[0].message.content
        assert reply.usage.prompt_tokens == len(backend.llm.tokenize(backend.render(MESSAGES).encode(),
                                                                     add_bos=False, special=True))
        assert reply.choices[0].message.content
    finally:
        running.stop()
        backend.llm.close()


def test_bad_sources_are_refused_before_any_work(tmp_path, tiny_run):
    from tunesmith.core.errors import UserError
    from tunesmith.core.export.gguf import convert_gguf

    with pytest.raises(UserError, match="does not exist"):
        convert_gguf(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(UserError, match="unknown GGUF type"):
        convert_gguf(tiny_run, tmp_path / "out", quant="q9")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        convert_gguf(tiny_run, tmp_path / "full")
