"""Prompt templates: the 27 XTuner names with exact strings, family table, chat-time prompts."""

from __future__ import annotations

import pytest

from tunesmith.core.data import templates as T
from tunesmith.core.errors import UserError

XTUNER_NAMES = [
    "default", "zephyr", "internlm_chat", "internlm2_chat", "moss_sft", "llama2_chat", "code_llama_chat",
    "chatglm2", "chatglm3", "qwen_chat", "baichuan_chat", "baichuan2_chat", "wizardlm", "wizardcoder", "vicuna",
    "deepseek_coder", "deepseekcoder", "deepseek_moe", "deepseek_v2", "mistral", "mixtral", "minicpm", "minicpm3",
    "gemma", "cohere_chat", "llama3_chat", "phi3_chat",
]


def test_all_27_names_in_xtuner_order():
    assert list(T.PROMPT_TEMPLATES) == XTUNER_NAMES
    assert T.TEMPLATE_NAMES[-1] == "chat_template"


def test_exact_strings_of_key_templates():
    d = T.get_template("default")
    assert (d.system, d.instruction, d.suffix, d.suffix_as_eos, d.sep, d.stop_words) == (
        "<|System|>:{system}\n", "<|User|>:{input}\n<|Bot|>:", "", False, "\n", ())
    i2 = T.get_template("internlm2_chat")
    assert (i2.system, i2.instruction, i2.suffix, i2.suffix_as_eos, i2.sep, i2.stop_words) == (
        "<|im_start|>system\n{system}<|im_end|>\n", "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
        "<|im_end|>", True, "\n", ("<|im_end|>",))
    l3 = T.get_template("llama3_chat")
    assert (l3.system, l3.instruction, l3.suffix, l3.suffix_as_eos, l3.sep, l3.stop_words) == (
        "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\n{input}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|>", True, "", ("<|eot_id|>",))
    q = T.get_template("qwen_chat")
    assert q.stop_words == ("<|im_end|>", "<|endoftext|>") and q.sep == "\n" and q.suffix_as_eos
    g3 = T.get_template("chatglm3")
    assert (g3.system, g3.instruction, g3.suffix, g3.sep) == ("<|system|>\n{system}", "<|user|>\n{input}<|assistant|>\n", "", "\n")
    assert T.get_template("chatglm2").instruction == "[Round {round}]\n\n问：{input}\n\n答："
    assert T.get_template("chatglm2").sep == "\n\n"
    assert T.get_template("gemma").suffix == "<end_of_turn>" and not T.get_template("gemma").suffix_as_eos
    assert T.get_template("deepseek_v2").suffix == "<｜end▁of▁sentence｜>"
    assert T.get_template("minicpm").instruction == "<用户> {input} <AI>" and T.get_template("minicpm").system == ""
    assert T.get_template("llama2_chat").system.startswith("[INST] <<SYS>>\n You are a helpful, respectful")
    assert T.get_template("llama2_chat").system.endswith("nature.\n{system}\n<</SYS>>\n [/INST] ")
    assert "developed by DeepSeekCompany, and" in T.get_template("deepseek_coder").system
    assert T.get_template("mixtral") == T.PromptTemplate("mixtral", *[getattr(T.get_template("mistral"), f) for f in
                                                          ("system", "instruction", "suffix", "suffix_as_eos", "sep",
                                                           "stop_words")])
    suffix_as_eos = sorted(n for n, t in T.PROMPT_TEMPLATES.items() if t.suffix_as_eos)
    assert suffix_as_eos == ["cohere_chat", "deepseek_v2", "internlm2_chat", "internlm_chat", "llama3_chat",
                             "minicpm3", "phi3_chat", "qwen_chat"]


def test_system_templates():
    assert set(T.SYSTEM_TEMPLATES) == {"moss_sft", "alpaca", "arxiv_gentile", "colorist", "coder", "lawyer", "medical", "sql"}
    assert T.SYSTEM_TEMPLATES["alpaca"] == ("Below is an instruction that describes a task. Write a response that "
                                            "appropriately completes the request.\n")
    assert T.SYSTEM_TEMPLATES["colorist"].startswith("You are a professional color designer.")


def test_unknown_template_names_close_match():
    with pytest.raises(UserError, match="internlm2_chat"):
        T.get_template("internlm2chat")


@pytest.mark.parametrize("model,expected", [
    ("internlm/internlm2-chat-7b", "internlm2_chat"), ("internlm/internlm2_5-7b-chat", "internlm2_chat"),
    ("internlm/internlm-chat-7b", "internlm_chat"), ("internlm/internlm3-8b-instruct", "chat_template"),
    ("meta-llama/Llama-2-7b-chat-hf", "llama2_chat"), ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3_chat"),
    ("meta-llama/Llama-3.1-8B", "llama3_chat"), ("codellama/CodeLlama-7b-Instruct-hf", "code_llama_chat"),
    ("Qwen/Qwen-7B-Chat", "qwen_chat"), ("Qwen/Qwen1.5-7B-Chat", "qwen_chat"), ("Qwen/Qwen2-0.5B", "qwen_chat"),
    ("Qwen/Qwen3-8B", "chat_template"), ("THUDM/chatglm2-6b", "chatglm2"), ("THUDM/chatglm3-6b", "chatglm3"),
    ("baichuan-inc/Baichuan-13B-Chat", "baichuan_chat"), ("baichuan-inc/Baichuan2-7B-Chat", "baichuan2_chat"),
    ("mistralai/Mistral-7B-Instruct-v0.2", "mistral"), ("mistralai/Mixtral-8x7B-v0.1", "mixtral"),
    ("01-ai/Yi-6B", "default"), ("01-ai/Yi-34B-Chat", "chat_template"), ("google/gemma-2b-it", "gemma"),
    ("microsoft/Phi-3-mini-4k-instruct", "phi3_chat"), ("deepseek-ai/DeepSeek-V2-Lite-Chat", "deepseek_v2"),
    ("deepseek-ai/deepseek-coder-6.7b-instruct", "deepseek_coder"), ("deepseek-ai/deepseek-moe-16b-chat", "deepseek_moe"),
    ("bigcode/starcoder", "default"), ("HuggingFaceH4/zephyr-7b-beta", "zephyr"),
    ("openbmb/MiniCPM-2B-sft-bf16", "minicpm"), ("openbmb/MiniCPM3-4B", "minicpm3"),
    ("CohereForAI/c4ai-command-r-v01", "cohere_chat"), ("HuggingFaceTB/SmolLM2-135M-Instruct", "chat_template"),
    ("embedded:SmolLM2-135M-Instruct", "chat_template"), ("lmsys/vicuna-7b-v1.5", "vicuna"),
    ("some/unknown-model", "default"), ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "chat_template"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen_chat"), ("meta-llama/Llama-3.2-1B-Instruct", "llama3_chat"),
])
def test_family_table(model, expected):
    assert T.template_for_model(model) == expected


def test_local_folder_uses_model_type_and_chat_template(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "internlm2"}')
    assert T.template_for_model(str(tmp_path)) == "internlm2_chat"
    other = tmp_path / "x"
    other.mkdir()
    (other / "tokenizer_config.json").write_text('{"chat_template": "{{ messages }}"}')
    assert T.template_for_model(str(other)) == "chat_template"


def test_resolve_template(tokenizer):
    assert T.resolve_template("auto", "embedded:SmolLM2-135M-Instruct", tokenizer=tokenizer) == "chat_template"
    assert T.resolve_template("", "Qwen/Qwen2-7B") == "qwen_chat"
    assert T.resolve_template("gemma", "whatever") == "gemma"
    # unknown family + a tokenizer with a chat template -> the tokenizer's own; a known family keeps its template
    assert T.resolve_template("auto", "acme/brand-new-model", tokenizer=tokenizer) == "chat_template"
    assert T.resolve_template("auto", "01-ai/Yi-6B", tokenizer=tokenizer) == "default"

    class NoChat:
        chat_template = None
    assert T.resolve_template("auto", "HuggingFaceTB/SmolLM2-135M", tokenizer=NoChat()) == "default"
    with pytest.raises(UserError, match="no chat template"):
        T.resolve_template("chat_template", "x", tokenizer=NoChat())
    with pytest.raises(UserError, match="unknown prompt template"):
        T.resolve_template("nope", "x")


def test_stop_words(tokenizer):
    assert T.stop_words_for("qwen_chat", tokenizer) == ["<|im_end|>", "<|endoftext|>"]
    assert T.stop_words_for("moss_sft", tokenizer) == ["<eoc>", "<eom>", "<|im_end|>"]
    assert T.stop_words_for("chat_template", tokenizer) == ["<|im_end|>"]
    assert T.stop_words_for("default") == []


MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}]


def test_chat_prompt_layout_matches_training(tokenizer):
    # SmolLM2's BOS is <|im_start|>, its EOS <|im_end|>.
    assert T.build_chat_prompt("default", tokenizer, MESSAGES) == (
        "<|im_start|><|System|>:S\n<|User|>:Q1\n<|Bot|>:A1<|im_end|>\n<|im_start|><|User|>:Q2\n<|Bot|>:")
    assert T.build_chat_prompt("internlm2_chat", tokenizer, MESSAGES) == (
        "<|im_start|><|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n"
        "A1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n")
    assert T.build_chat_prompt("chatglm2", tokenizer, MESSAGES) == (
        "<|im_start|>S\n[Round 1]\n\n问：Q1\n\n答：A1<|im_end|>\n\n<|im_start|>[Round 2]\n\n问：Q2\n\n答：")
    assert T.build_chat_prompt("chat_template", tokenizer, MESSAGES) == tokenizer.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True)
    # no generation prompt: the finished conversation only
    done = MESSAGES[:3]
    assert T.build_chat_prompt("llama3_chat", tokenizer, done, add_generation_prompt=False) == (
        "<|im_start|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>"
        "\n\nQ1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>")


@pytest.mark.parametrize("name", XTUNER_NAMES)
def test_every_template_builds_a_prompt(tokenizer, name):
    tpl = T.get_template(name)
    text = T.build_chat_prompt(name, tokenizer, MESSAGES)
    assert text.startswith("<|im_start|>")
    assert text.endswith(T.fill(tpl.instruction, input="Q2", round=2))
    assert "A1" + tpl.suffix in text
    if tpl.system:
        assert T.fill(tpl.system, system="S") in text
    ids = T.encode_chat_prompt(name, tokenizer, MESSAGES)
    assert ids[0] == tokenizer.bos_token_id and tokenizer.decode(ids) == text


def test_bos_eos_special_cases(tokenizer):
    class Qwen2Tokenizer:
        bos_token_id, eos_token_id = None, 151643

    class ChatGLMTokenizer:
        bos_token_id, eos_token_id = 1, 2
    assert T.bos_eos_ids(Qwen2Tokenizer()) == ([], [151643])
    assert T.bos_eos_ids(ChatGLMTokenizer()) == ([64790, 64792], [2])
    assert T.bos_eos_ids(tokenizer) == ([1], [2])
