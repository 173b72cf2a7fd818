"""Issue 9: values that used to slip into the training text as Python repr, and rows of any size.

* a message ``content`` (or an answer column) given as a list, an object or true/false drops its row
  with a reason naming the field (and the first row it happened in); plain numbers become their digits
  and the statistics say so;
* a message with no ``content`` drops its row instead of becoming an empty user turn;
* a row of megabytes is cut before it is tokenised (the ids stay exactly those of tokenising it all,
  cut to max_length) and the statistics name the row.
"""

from __future__ import annotations

import json

import pytest

from tunesmith.core.config import DataConfig
from tunesmith.core.data.pipeline import build_sft_data
from tunesmith.core.data.preview import preview
from tunesmith.core.errors import DataError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def chat(question, answer):
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def test_non_text_contents_drop_their_row_with_the_field_and_row_number(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "values.jsonl", [
        chat("q0", "fine"),             # 0 kept
        chat("q1", ["x", "y"]),         # 1 list -> dropped
        chat("q2", {"a": 1}),           # 2 object -> dropped
        chat("q3", True),               # 3 bool -> dropped
        chat("q4", 42),                 # 4 plain number -> "42", noted
        chat(["q", "5"], "fine"),       # 5 list in a question -> dropped (same reason as row 1)
        {"messages": [{"role": "user"}, {"role": "user", "content": "hi"},  # 6 a message with no content
                      {"role": "assistant", "content": "x"}]},
    ])
    built = build_sft_data(DataConfig(path=path, template="default", pack=False), tokenizer)
    s = built.stats
    assert s.dropped == {"a message's 'content' is a list, not text": 2,
                         "a message's 'content' is an object, not text": 1,
                         "a message's 'content' is true/false, not text": 1,
                         "a 'user' message has no 'content'": 1}
    assert s.drop_examples == {"a message's 'content' is a list, not text": 1,
                               "a message's 'content' is an object, not text": 2,
                               "a message's 'content' is true/false, not text": 3,
                               "a 'user' message has no 'content'": 6}
    assert s.kept == 2 and s.notes == {'a number was used as text (e.g. 4 became "4")': 1}
    assert s.note_examples == {'a number was used as text (e.g. 4 became "4")': 4}
    texts = [tokenizer.decode(ids) for ids in built.train["input_ids"]]
    assert not any("['x'" in t or "True" in t or "{'a'" in t for t in texts)
    supervised = [tokenizer.decode([t for t in labels if t != -100]) for labels in built.train["labels"]]
    assert sorted(supervised) == sorted(["fine<|im_end|>", "42<|im_end|>"])

    result = preview(DataConfig(path=path, template="default"), tokenizer)
    warnings = result.warnings()
    assert "2 row(s) dropped: a message's 'content' is a list, not text (first: row 1)" in warnings
    assert "1 row(s) dropped: a 'user' message has no 'content' (first: row 6)" in warnings
    assert '1 row(s): a number was used as text (e.g. 4 became "4") (first: row 4)' in warnings


@pytest.mark.parametrize("rows,reason", [
    ([{"instruction": ["a", "b"], "output": "x"}], "'instruction' is a list, not text (first: row 0)"),
    ([{"input": "q", "output": False}], "is true/false, not text (first: row 0)"),
    ([{"conversations": [{"from": "human", "value": {"t": 1}}, {"from": "gpt", "value": "a"}]}],
     "a message's 'value' is an object, not text (first: row 0)"),
    ([{"conversations": [{"from": "human"}, {"from": "gpt", "value": "a"}]}],
     "a 'human' message has no 'value' (first: row 0)"),
])
def test_other_formats_refuse_non_text_too(tokenizer, tmp_path, rows, reason):
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError) as err:
        build_sft_data(DataConfig(path=path, template="default"), tokenizer)
    assert reason in str(err.value)


# ---- one huge row ---------------------------------------------------------------------------------------

MAX_LENGTH = 256


def _record_tokenised(monkeypatch) -> list[int]:
    """Wrap both tokenizer entry points of the encoders; returns the lengths of the texts they were given."""
    import tunesmith.core.data.encode as encode
    import tunesmith.core.data.token_ids as token_ids

    sizes: list[int] = []
    fast, offsets = token_ids.batch_token_ids, encode.batch_ids_offsets

    def batch_token_ids(tokenizer, texts):
        sizes.extend(map(len, texts))
        return fast(tokenizer, texts)

    def batch_ids_offsets(tokenizer, texts):
        sizes.extend(map(len, texts))
        return offsets(tokenizer, texts)

    monkeypatch.setattr(token_ids, "batch_token_ids", batch_token_ids)
    monkeypatch.setattr(encode, "batch_ids_offsets", batch_ids_offsets)
    return sizes


def _uncut_ids(tokenizer, template, conversation, monkeypatch):
    """What encoding gives when the whole row is tokenised (the old way), cut to MAX_LENGTH."""
    from tunesmith.core.data.encode import ChatTemplateEncoder, XTunerEncoder, make_encoder

    with monkeypatch.context() as m:
        for cls in (XTunerEncoder, ChatTemplateEncoder):
            m.setattr(cls, "char_budget", property(lambda self: 1 << 40))
        enc = make_encoder(tokenizer, template, MAX_LENGTH).encode_batch([conversation])[0]
    assert not enc.cut and enc.full_length > 10_000
    return enc


@pytest.mark.parametrize("template", ["default", "chat_template"])
@pytest.mark.slow  # over 2.5 s: kept out of make test-fast
def test_a_huge_row_is_cut_before_tokenising_and_named(tokenizer, tmp_path, monkeypatch, template):
    from tunesmith.core.data.encode import char_budget
    from tunesmith.core.data.pipeline import LONG_ROW_NOTE

    prose = " ".join(f"word{i % 997}" for i in range(250_000))          # 2 MB, about 5 characters a token
    dashes = "-" * 2_000_000                                              # 64 characters a token: retried
    rows = [{"input": "Hi", "output": "Hello"},
            {"input": "Summarise the text.", "output": prose},
            {"input": prose, "output": "Too late to be learned."},
            {"input": "Draw a line.", "output": dashes}]
    path = write_jsonl(tmp_path / "huge.jsonl", rows)
    sizes = _record_tokenised(monkeypatch)
    built = build_sft_data(DataConfig(path=path, template=template, max_length=MAX_LENGTH, pack=False), tokenizer)
    s = built.stats
    # never more than the budget (x4 per retry) is handed to the tokenizer, though a row holds 2 MB
    assert max(sizes) <= char_budget(MAX_LENGTH) * 16 + 200, max(sizes)
    assert sum(sizes) < 200_000, sum(sizes)
    assert s.kept == 3 and s.dropped == {"no supervised token left after truncation to max_length": 1}
    assert s.drop_examples == {"no supervised token left after truncation to max_length": 2}
    assert s.notes == {LONG_ROW_NOTE: 2} and s.note_examples == {LONG_ROW_NOTE: 1}
    assert s.truncated == 2 and sorted(built.train["length"])[1:] == [MAX_LENGTH, MAX_LENGTH]

    # the ids are exactly those of tokenising the whole row, then cutting to max_length
    from tunesmith.core.data.pipeline import make_spec

    spec = make_spec(DataConfig(path=path, template=template, max_length=MAX_LENGTH), tokenizer, ["input", "output"])
    kept = {tuple(r["input_ids"]) for r in built.train}
    for source in (rows[1], rows[3]):
        conversation = spec.map_fn(source)["conversation"]
        reference = _uncut_ids(tokenizer, spec.template, conversation, monkeypatch)
        assert len(reference.input_ids) == MAX_LENGTH and tuple(reference.input_ids) in kept

    result = preview(DataConfig(path=path, template=template, max_length=MAX_LENGTH), tokenizer)
    assert f"2 row(s): {LONG_ROW_NOTE} (first: row 1)" in result.warnings()
    assert [x.truncated for x in result.samples] == [False, True, True]


@pytest.mark.parametrize("template", ["default", "chat_template"])
def test_encoding_a_huge_row_holds_little_memory(tokenizer, template):
    """tracemalloc peak of encoding one 4 MB conversation: under 1 MiB (tokenising the whole row, as
    before, held 62 MB of Python objects for it, besides what the Rust tokenizer held)."""
    import tracemalloc

    from tunesmith.core.data.encode import make_encoder

    text = " ".join(f"word{i % 997}" for i in range(500_000))
    encoder = make_encoder(tokenizer, template, MAX_LENGTH)
    tracemalloc.start()
    try:
        enc = encoder.encode_batch([[{"input": "Summarise.", "output": text}]])[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert enc.cut and len(enc.input_ids) == MAX_LENGTH
    assert peak < 1 << 20, (peak, len(text))
