"""Encoding exactly as XTuner's template_map_fn + encode_fn, with literal ids from the real SmolLM2 tokenizer.

SmolLM2 ids used below: 1 <|im_start|> (its BOS), 2 <|im_end|> (its EOS), 198 "\\n", 67 "S", 26843 "Hi",
19556 "Hello", 17 "!", 3087 "By" 85 "e", 51 "C" 28467 "iao", 9690 "system", 4093 "user", 520 "ass" 9531 "istant".
"""

from __future__ import annotations

import copy

import pytest

from tunesmith.core.data.encode import (IGNORE_INDEX, ChatTemplateEncoder, XTunerEncoder, conversation_to_messages,
                                        make_encoder)
from tunesmith.core.data.token_ids import batch_token_ids

M = IGNORE_INDEX
CONV = [{"system": "S", "input": "Hi", "output": "Hello!"}, {"input": "Bye", "output": "Ciao"}]


def enc(tokenizer, template, conv=CONV, max_length=2048):
    return make_encoder(tokenizer, template, max_length).encode_batch([conv])[0]


def test_default_template(tokenizer):
    # [BOS] <|System|>:S\n<|User|>:Hi\n<|Bot|>: | Hello! EOS | \n (SEP) | [BOS] <|User|>:Bye\n<|Bot|>: | Ciao EOS | \n
    e = enc(tokenizer, "default")
    assert e.input_ids == [1, 44, 108, 18403, 108, 46, 42, 67, 198, 44, 108, 11126, 108, 46, 42, 26843, 198, 44, 108,
                           24412, 108, 46, 42, 19556, 17, 2, 198, 1, 44, 108, 11126, 108, 46, 42, 3087, 85, 198, 44,
                           108, 24412, 108, 46, 42, 51, 28467, 2, 198]
    assert e.labels == [M] * 23 + [19556, 17, 2] + [M] * 17 + [51, 28467, 2, M]


def test_internlm2_chat(tokenizer):
    # BOS, then the chatml text; the suffix <|im_end|> acts as EOS: no EOS token and no BOS before turn 2
    e = enc(tokenizer, "internlm2_chat")
    assert e.input_ids == [1, 1, 9690, 198, 67, 2, 198, 1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198, 19556, 17, 2,
                           198, 1, 4093, 198, 3087, 85, 2, 198, 1, 520, 9531, 198, 51, 28467, 2, 198]
    assert e.labels == [M] * 17 + [19556, 17, 2] + [M] * 12 + [51, 28467, 2, M]


def test_qwen_chat_same_layout_and_qwen_tokenizers_get_no_bos(tokenizer):
    e = enc(tokenizer, "qwen_chat")
    assert e.input_ids == [1, 1, 9690, 198, 67, 2, 198, 1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198, 19556, 17, 2,
                           198, 1, 4093, 198, 3087, 85, 2, 198, 1, 520, 9531, 198, 51, 28467, 2, 198]
    assert e.labels == [M] * 17 + [19556, 17, 2] + [M] * 12 + [51, 28467, 2, M]
    qwen = copy.copy(tokenizer)
    qwen.__class__ = type("Qwen2Tokenizer", (type(tokenizer),), {})
    q = enc(qwen, "qwen_chat")
    assert q.input_ids == e.input_ids[1:] and q.labels == e.labels[1:]


def test_chatglm3_and_chatglm_prefix_tokens(tokenizer):
    e = enc(tokenizer, "chatglm3")
    assert e.input_ids == [1, 44, 108, 9690, 108, 46, 198, 67, 44, 108, 4093, 108, 46, 198, 26843, 44, 108, 520, 9531,
                           108, 46, 198, 19556, 17, 2, 198, 1, 44, 108, 4093, 108, 46, 198, 3087, 85, 44, 108, 520, 9531,
                           108, 46, 198, 51, 28467, 2, 198]
    assert e.labels == [M] * 22 + [19556, 17, 2] + [M] * 17 + [51, 28467, 2, M]
    glm = copy.copy(tokenizer)
    glm.__class__ = type("ChatGLMTokenizer", (type(tokenizer),), {})
    g = enc(glm, "chatglm3")
    # ChatGLM's two prefix tokens replace BOS at the start and after each EOS
    assert g.input_ids == [64790, 64792] + e.input_ids[1:26] + [64790, 64792] + e.input_ids[27:]
    assert g.labels == [M, M] + e.labels[1:26] + [M, M] + e.labels[27:]


def test_llama3_chat(tokenizer):
    # <|eot_id|> is plain text to SmolLM2, so it tokenises into pieces; it is the supervised suffix, no EOS
    e = enc(tokenizer, "llama3_chat", [{"input": "Hi", "output": "Hello!"}])
    assert e.input_ids == [1, 44, 108, 3738, 79, 12476, 79, 311, 108, 46, 4093, 44, 108, 486, 79, 12476, 79, 311, 108,
                           46, 198, 198, 26843, 44, 108, 85, 320, 79, 311, 108, 21198, 108, 3738, 79, 12476, 79, 311,
                           108, 46, 520, 9531, 44, 108, 486, 79, 12476, 79, 311, 108, 46, 1116, 19556, 17, 44, 108, 85,
                           320, 79, 311, 108, 46]
    assert e.labels == [M] * 51 + [19556, 17, 44, 108, 85, 320, 79, 311, 108, 46]
    two = enc(tokenizer, "llama3_chat")
    assert two.input_ids.count(1) == 1  # suffix as EOS: BOS only at the very start
    assert 2 not in two.input_ids  # and never the tokenizer's EOS


def test_chat_template_mode(tokenizer):
    e = enc(tokenizer, "chat_template")
    assert e.input_ids == [1, 9690, 198, 67, 2, 198, 1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198, 19556, 17, 2, 198,
                           1, 4093, 198, 3087, 85, 2, 198, 1, 520, 9531, 198, 51, 28467, 2, 198]
    # exactly each answer and its <|im_end|>; the newline after it is masked
    assert e.labels == [M] * 16 + [19556, 17, 2] + [M] * 12 + [51, 28467, 2, M]


@pytest.mark.parametrize("conv", [
    CONV,
    [{"input": "Hi", "output": "Hello!"}],
    [{"system": "Be terse.", "input": "2+2?", "output": " 4 "}, {"input": "", "output": "ok"}],
    [{"input": "你好", "output": "你好！我是 Melody。"}, {"input": "Who made you?", "output": "The Tunesmith team.\n"}],
])
def test_chat_template_oracle(tokenizer, conv):
    """input_ids equal apply_chat_template; labels are the answers and their end tokens only."""
    messages = conversation_to_messages(conv)
    expected = tokenizer.apply_chat_template(messages, tokenize=True)
    expected = expected["input_ids"] if hasattr(expected, "keys") else expected
    e = enc(tokenizer, "chat_template", conv)
    assert e.input_ids == list(expected)
    supervised = tokenizer.decode([t for t in e.labels if t != M])
    assert supervised == "".join(turn["output"] + "<|im_end|>" for turn in conv)


def test_chat_template_loss_off_and_system(tokenizer):
    conv = [{"input": "Q1", "output": "A1", "output_with_loss": False}, {"input": "Q2", "output": "A2"}]
    e = enc(tokenizer, "chat_template", conv)
    assert tokenizer.decode([t for t in e.labels if t != M]) == "A2<|im_end|>"
    text, spans = ChatTemplateEncoder(tokenizer, 100).render(conv)
    assert [text[a:b] for a, b in spans] == ["A2", "<|im_end|>"]


def test_output_with_loss_false_masks_answer_and_eos(tokenizer):
    conv = [{"input": "Hi", "output": "Hello!", "output_with_loss": False}, {"input": "Bye", "output": "Ciao"}]
    e = enc(tokenizer, "default", conv)
    assert [t for t in e.labels if t != M] == [51, 28467, 2]
    assert e.supervised == 3


def test_pretrain_no_template_no_eos(tokenizer):
    e = enc(tokenizer, None, [{"input": "", "output": "Hello!", "need_eos_token": False}])
    assert e.input_ids == [1, 19556, 17] and e.labels == [M, 19556, 17]


def test_truncation_keeps_the_head(tokenizer):
    e = enc(tokenizer, "internlm2_chat", max_length=19)
    assert e.input_ids == [1, 1, 9690, 198, 67, 2, 198, 1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198, 19556, 17]
    assert e.labels == [M] * 17 + [19556, 17]
    assert e.truncated and e.full_length == 36 and e.supervised == 2
    cut = enc(tokenizer, "internlm2_chat", max_length=10)
    assert cut.supervised == 0 and len(cut.input_ids) == 10


def test_overhead(tokenizer):
    # internlm2_chat around an empty answer: BOS + 9 instruction tokens + <|im_end|> = 11 (SEP not counted)
    assert XTunerEncoder(tokenizer, "internlm2_chat", 100).overhead() == 11
    assert XTunerEncoder(tokenizer, None, 100).overhead() == 2  # BOS + EOS
    assert ChatTemplateEncoder(tokenizer, 100).overhead() > 10  # SmolLM2 adds its default system prompt


def test_batch_token_ids_match_tokenizer(tokenizer):
    texts = ["Hello world", "<|im_start|>user\nHi<|im_end|>", "你好，世界 🙂", "  spaces\n\nand\ttabs", ""]
    assert batch_token_ids(tokenizer, texts) == tokenizer(texts, add_special_tokens=False)["input_ids"]


def test_batch_encoding_equals_one_by_one(tokenizer):
    convs = [CONV, [{"input": "Hi", "output": "Hello!"}], [{"system": "S", "input": "Q", "output": "A"}]]
    encoder = make_encoder(tokenizer, "internlm2_chat", 2048)
    together = encoder.encode_batch(convs)
    alone = [encoder.encode_batch([c])[0] for c in convs]
    assert [(a.input_ids, a.labels) for a in together] == [(b.input_ids, b.labels) for b in alone]


def test_chat_template_errors_drop_the_row(tokenizer):
    strict = copy.copy(tokenizer)
    strict.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                            "{{ raise_exception('no system messages') }}{% endif %}{{ m['content'] }}{% endfor %}")
    results = ChatTemplateEncoder(strict, 64).encode_batch([[{"system": "S", "input": "Q", "output": "A"}],
                                                            [{"input": "Q", "output": "A"}]])
    assert results[0].error.startswith("the chat template refused this conversation (no system messages")
    assert results[1].error == "" and strict.decode(results[1].input_ids) == "QA"


def test_retried_samples_keep_their_place(tokenizer, monkeypatch):
    """Samples whose cut text packed tighter than the budget assumed are encoded again; the batch keeps
    the input order, and every sample equals its whole-text encoding within max_length."""
    words = {0: 3, 1: 21, 2: 200}  # answers of 15, 105 and 1000 characters
    convs = [[{"input": f"Q{i}", "output": "word " * words[i % 3]}] for i in range(9)]
    encoder = XTunerEncoder(tokenizer, "internlm2_chat", 24)
    with monkeypatch.context() as m:
        m.setattr(XTunerEncoder, "char_budget", property(lambda self: 1 << 40))
        whole = encoder.encode_batch(convs)
    monkeypatch.setattr(XTunerEncoder, "char_budget", property(lambda self: 40))
    cut = encoder.encode_batch(convs)
    assert [(c.input_ids, c.labels) for c in cut] == [(w.input_ids, w.labels) for w in whole]
    # 105 characters: cut at 40, too few tokens, encoded whole from 160; 1000: cut at 40, 160, then 640
    assert [c.cut for c in cut] == [False, False, True] * 3
    assert all(c.full_length < w.full_length for c, w in zip(cut[2::3], whole[2::3]))  # only heads tokenised
