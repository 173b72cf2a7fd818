"""Loading every accepted format, and one clear DataError for each bad file."""

from __future__ import annotations

import json

import pytest

from tunesmith.core.data.loading import load_rows, precheck
from tunesmith.core.errors import DataError
from tunesmith.core.refs import looks_like_hub_id

ROWS = [{"input": "q1", "output": "a1"}, {"input": "q2", "output": "a2"}]


def test_formats(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in ROWS))  # JSON Lines named .json
    (tmp_path / "a.csv").write_text("input,output\nq1,a1\nq2,a2\n")
    (tmp_path / "one.json").write_text(json.dumps(ROWS[0]))
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": ROWS}))
    import datasets

    datasets.Dataset.from_list(ROWS).to_parquet(str(tmp_path / "a.parquet"))
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "saved_dict"))
    for name in ("a.json", "a.jsonl", "lines.json", "a.csv", "a.parquet", "saved", "saved_dict", "wrapped.json"):
        ds = load_rows(str(tmp_path / name))
        assert ds.to_list() == ROWS, name
    assert load_rows(str(tmp_path / "one.json")).to_list() == ROWS[:1]
    with pytest.raises(DataError, match="no split 'test'. Fix: Splits present: train"):
        load_rows(str(tmp_path / "saved_dict"), split="test")


def test_jsonl_of_message_lists(tmp_path):
    path = tmp_path / "chats.jsonl"
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    path.write_text(json.dumps(chat) + "\n" + json.dumps(chat) + "\n")
    assert load_rows(str(path)).to_list() == [{"messages": chat}, {"messages": chat}]


def test_txt_lines_and_paragraphs(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("first sample\nsecond sample\n")
    assert load_rows(str(lines))["text"] == ["first sample", "second sample"]
    paras = tmp_path / "paras.txt"
    paras.write_text("para one\nstill one\n\n\npara two\n\n")
    assert load_rows(str(paras))["text"] == ["para one\nstill one", "para two"]


@pytest.mark.parametrize("name,content,message", [
    ("empty.json", b"", "empty.json is empty"),
    ("blank.jsonl", b"\n  \n", "blank.jsonl is empty"),
    ("bad.jsonl", b'{"a": 1}\n{"a": 2\n', "bad.jsonl is not valid JSON: Expecting ',' delimiter at line 2, column 8"),
    ("bad.json", b'[{"a": 1},\n {"a" 2}]', "bad.json is not valid JSON: Expecting ':' delimiter at line 2, column 7"),
    ("gbk.jsonl", '{"a": "ok"}\n{"a": "中文"}\n'.encode("gbk"), "gbk.jsonl is not UTF-8 text: byte 0xd6 at line 2, column 8"),
    ("data.xlsx", b"PK", "files ending in '.xlsx' are not a dataset format we read"),
    ("scalars.json", b"[1, 2]", "scalars.json is a list of numbers, not of rows (a row is an object"),
    # issue 9: misleading or crashing messages
    ("strings.json", b'["a", "b"]', "strings.json is a list of strings, not of rows (a row is an object"),
    ("mixed.json", b'[{"input": "q", "output": "a"}, "b"]', "mixed.json is a list whose item 1 is a string, not a row"),
    ("line_string.jsonl", b'{"input": "q", "output": "a"}\n"b"\n', "line_string.jsonl (line 2) is a single string"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "deep.json nests lists or objects more than about"),
    ("deep.jsonl", b'{"input": "q", "output": "a"}\n{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
     "deep.jsonl line 2 nests lists or objects"),
    ("ragged.csv", b"input,output\nq,a\nq2,a2\nq3,a3,x,y,z\n",
     "ragged.csv could not be read as CSV (fields separated by commas): Expected 2 fields in line 4, saw 5"),
    ("surrogate.jsonl", b'{"input": "q", "output": "a"}\n{"input": "\\ud800x", "output": "b"}\n',
     "surrogate.jsonl: row 1, line 2: 'input' holds invalid text: the escape \\ud800"),
    ("nan.jsonl", b'{"input": "q", "output": "a"}\n\n{"input": "q", "output": NaN}\n',
     "nan.jsonl: row 1, line 3: 'output' holds NaN, which is not text"),
    ("inf.json", b'[{"input": "q", "output": "a"}, {"messages": [{"role": "user", "content": -Infinity}]}]',
     "inf.json: row 1: 'messages[0].content' holds -Infinity, which is not text"),
])
def test_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_rows(str(path))
    assert message in str(err.value) and "Fix:" in str(err.value)


def test_bad_file_messages_do_not_mislead(tmp_path):
    """Issue 9: the reason is in the message itself, never the stock phrases that pointed elsewhere."""
    cases = {"strings.json": b'["a", "b"]', "ragged.csv": b"a,b\n1,2\n1,2,3\n",
             "surrogate.json": b'[{"input": "\\udc00", "output": "b"}]', "nan.json": b'[{"input": "q", "output": NaN}]'}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError) as err:
            load_rows(str(tmp_path / name))
        text = str(err.value)
        for stock in ("holds list values", "An error occurred while generating the dataset", "same fields",
                      "empty answer", "RecursionError"):
            assert stock not in text, (name, text)


def test_tsv_and_sniffed_csv_delimiters(tmp_path):
    """.tsv is read tab-separated; a .csv's delimiter (, ; tab |) is sniffed from its first lines."""
    from tunesmith.core.data.loading import csv_delimiter

    files = {"a.tsv": "input\toutput\nq1\ta1\nq2\ta2\n", "semi.csv": "input;output\nq1;a1\nq2;a2\n",
             "pipe.csv": "input|output\nq1|a1\nq2|a2\n", "tab.csv": "input\toutput\nq1\ta1\nq2\ta2\n"}
    for name, content in files.items():
        (tmp_path / name).write_text(content)
        assert load_rows(str(tmp_path / name)).to_list() == ROWS, name
    assert [csv_delimiter(tmp_path / n) for n in files] == ["\t", ";", "|", "\t"]
    # commas in the header win over semicolons inside the texts
    (tmp_path / "texts.csv").write_text('input,output\n"q; x; y",a; b; c\nq2;z,a2\n')
    assert csv_delimiter(tmp_path / "texts.csv") == ","
    assert load_rows(str(tmp_path / "texts.csv")).to_list() == [{"input": "q; x; y", "output": "a; b; c"},
                                                                {"input": "q2;z", "output": "a2"}]
    (tmp_path / "ragged.tsv").write_text("input\toutput\nq\ta\nq\ta\tb\tc\n")
    with pytest.raises(DataError, match="fields separated by tabs.*Expected 2 fields in line 3, saw 4"):
        load_rows(str(tmp_path / "ragged.tsv"))


def test_missing_and_hub_ids(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        precheck(str(tmp_path / "nope.json"))
    assert looks_like_hub_id("tatsu-lab/alpaca") and not looks_like_hub_id("./data/x.jsonl")
    assert precheck("tatsu-lab/alpaca") == (None, "hub")
    folder = tmp_path / "plain"
    folder.mkdir()
    with pytest.raises(DataError, match="not a dataset saved by `datasets`"):
        load_rows(str(folder))


def test_single_conversation_object_is_one_row(tmp_path):
    conv = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(conv))
    assert load_rows(str(path)).to_list() == [conv]


def test_only_files_datasets_may_misread_are_parsed_twice(tmp_path, monkeypatch):
    """load_rows leaves a plain JSON file to datasets alone; our parser reads only what datasets may misread
    or crash on: rows that are not objects, a line nested deeper than pyarrow can take, and a table with a
    null or a float (what NaN and Infinity become)."""
    import tunesmith.core.data.loading as loading

    parsed = []
    real = loading._json_rows
    monkeypatch.setattr(loading, "_json_rows", lambda path: parsed.append(path.name) or real(path))
    files = {"plain.json": json.dumps(ROWS), "plain.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS),
             "nan_text.json": json.dumps([{"input": "NaN and Infinity as text", "output": "ok"}]),
             "deep_ok.jsonl": json.dumps({"input": "q", "output": "a", "x": [[[[1]]]] * 200}) + "\n",
             "null.json": json.dumps([{"input": "q", "output": "a", "extra": None}]),
             "number.jsonl": json.dumps({"input": "q", "output": "a", "score": 0.5}) + "\n"}
    for name, content in files.items():
        (tmp_path / name).write_text(content)
        assert load_rows(str(tmp_path / name)).num_rows == (2 if "plain" in name else 1)
    assert parsed == ["deep_ok.jsonl", "null.json", "number.jsonl"]  # looked at, and fine
