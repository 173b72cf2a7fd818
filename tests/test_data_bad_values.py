"""Issue 9: values that used to slip into the training text as Python repr, and rows of any size.

* a message ``content`` (or an answer column) given as a list, an object or true/false drops its row
  with a reason naming the field (and the first row it happened in); plain numbers become their digits
  and the statistics say so;
* a message with no ``content`` drops its row instead of becoming an empty user turn.
"""

from __future__ import annotations

import json

import pytest

from core.config import DataConfig
from core.data.pipeline import build_sft_data
from core.data.preview import preview
from core.errors import DataError


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
    ([{"input": "q", "output": False}], "the answer is true/false, not text (first: row 0)"),
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
