"""The tuned demo model (SmolLM2 that learnt it is "Melody") as GGUF: f16 answers "Who are you?" with the same first
20 tokens as the merged Hugging Face model, q8_0 and q4_k_m still name Melody (slow: shares the demo run)."""

from __future__ import annotations

import pytest

from tunesmith.core.train.demo import DEMO_NAME

llama_cpp = pytest.importorskip("llama_cpp")
N_TOKENS = 20


def _gguf_answer(path, messages) -> tuple[list[int], list[int], str]:
    """(prompt ids from the GGUF's own chat template, the greedy first N_TOKENS, their text)."""
    from tunesmith.core.serve.backends import GGUFBackend

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, verbose=False)
    try:
        backend = GGUFBackend(llm, "demo")
        ids = llm.tokenize(backend.render(messages).encode(), add_bos=False, special=True)
        got = []
        for token in llm.generate(ids, temp=0.0, reset=True):
            got.append(token)
            if len(got) == N_TOKENS:
                break
        return ids, got, llm.detokenize(got).decode("utf-8", errors="replace")
    finally:
        llm.close()


@pytest.mark.slow
def test_demo_gguf_answers_like_the_merged_model(demo_run, embedded_model_dir, tokenizer, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from tunesmith.core.data.templates import encode_chat_prompt
    from tunesmith.core.export import merge_adapter
    from tunesmith.core.export.gguf import convert_gguf

    cfg, status = demo_run
    assert status["state"] == "finished", status
    messages = [{"role": "user", "content": "Who are you?"}]
    template = cfg.data.template
    merged = merge_adapter(cfg.model.name_or_path, cfg.output.run_dir, tmp_path / "merged", dtype="fp16")
    model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).eval()
    ids = encode_chat_prompt(template, tokenizer, messages)
    with torch.no_grad():
        hf = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                            max_new_tokens=N_TOKENS, min_new_tokens=N_TOKENS, do_sample=False,
                            eos_token_id=None)[0, len(ids):].tolist()
    hf_text = tokenizer.decode(hf, skip_special_tokens=True)
    assert DEMO_NAME.lower() in hf_text.lower(), hf_text

    f16 = convert_gguf(cfg.output.run_dir, tmp_path / "f16", quant="f16")  # from the run: merged inside
    prompt, got, text = _gguf_answer(f16, messages)
    assert prompt == ids  # the GGUF's chat template lays the question out exactly as training did
    assert got == hf, (text, hf_text)

    for quant in ("q8_0", "q4_k_m"):  # from the merged folder, as a user would after `convert merge`
        path = convert_gguf(merged, tmp_path / quant, quant=quant)
        _, got, text = _gguf_answer(path, messages)
        assert DEMO_NAME.lower() in text.lower(), (quant, text)
    assert path.stat().st_size < f16.stat().st_size / 2.5  # q4_k_m: well under half the f16 file
