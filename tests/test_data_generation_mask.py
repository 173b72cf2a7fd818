"""Chat-template loss masks (issue 10): a template with ``{% generation %}`` gives the mask through
``apply_chat_template(return_assistant_tokens_mask=True)``; the others keep the re-render + search way.
On a template that supports both, both give the same labels."""

from __future__ import annotations

import copy

import pytest

from tunesmith.core.data.encode import IGNORE_INDEX, ChatTemplateEncoder, supports_generation_mask

GENERATION_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<|im_start|>assistant\n{% generation %}"
    "{{ m['content'] }}<|im_end|>{% endgeneration %}\n{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

CONVERSATIONS = [
    [{"system": "Be brief.", "input": "Hi", "output": "Hello!"}],
    [{"input": "2+2?", "output": "4"}, {"input": "And 3+3?", "output": "6, of course."}],
    [{"input": "Long question " * 40, "output": "Long answer " * 200}],
]


@pytest.fixture()
def generation_tokenizer(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = GENERATION_TEMPLATE
    return tok


def test_both_ways_give_the_same_labels(generation_tokenizer):
    assert supports_generation_mask(generation_tokenizer)
    with_mask = ChatTemplateEncoder(generation_tokenizer, 256)
    fallback = ChatTemplateEncoder(generation_tokenizer, 256)
    fallback.generation_mask = False
    a, b = with_mask.encode_batch(CONVERSATIONS), fallback.encode_batch(CONVERSATIONS)
    for x, y in zip(a, b):
        assert not x.error and x.input_ids == y.input_ids and x.labels == y.labels
        assert x.supervised == y.supervised > 0
    assert a[2].truncated and a[2].cut == b[2].cut  # the long one is cut the same way


def test_the_mask_way_is_taken_when_the_template_supports_it(generation_tokenizer, monkeypatch):
    enc = ChatTemplateEncoder(generation_tokenizer, 256)
    monkeypatch.setattr(enc, "_render_spans", lambda *a: pytest.fail("string search used"))
    out = enc.encode_batch(CONVERSATIONS[:2])[1]
    supervised = generation_tokenizer.decode([t for t in out.labels if t != IGNORE_INDEX])
    assert supervised == "4<|im_end|>6, of course.<|im_end|>"


def test_an_answer_without_loss_and_a_plain_template_use_the_search(generation_tokenizer, tokenizer):
    enc = ChatTemplateEncoder(generation_tokenizer, 256)
    off = [{"input": "2+2?", "output": "4", "output_with_loss": False}, {"input": "3+3?", "output": "6"}]
    out = enc.encode_batch([off])[0]
    assert generation_tokenizer.decode([t for t in out.labels if t != IGNORE_INDEX]) == "6<|im_end|>"
    assert not supports_generation_mask(tokenizer) and not ChatTemplateEncoder(tokenizer, 256).generation_mask
