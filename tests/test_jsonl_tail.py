"""The GUI's poll reads only what was appended to metrics.jsonl (issue 10)."""

from __future__ import annotations

import json
import os

from tunesmith.core.train.jsonl_tail import JsonlTail, read_appended
from tunesmith.core.files import atomic_write_text


def _line(step: int) -> str:
    return json.dumps({"step": step, "loss": 1.0 / step}) + "\n"


def test_appended_lines_only(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1) + _line(2))
    tail = JsonlTail(path)
    assert [r["step"] for r in tail.read()] == [1, 2]
    parsed = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda s, *a, **k: parsed.append(s) or real(s, *a, **k))
    with open(path, "a") as fh:
        fh.write(_line(3))
    assert [r["step"] for r in tail.read()] == [1, 2, 3]
    assert len(parsed) == 1  # only the new line was parsed
    assert [r["step"] for r in tail.read()] == [1, 2, 3] and len(parsed) == 1  # nothing new: nothing parsed
    assert tail.rereads == 0


def test_a_torn_last_line_is_kept_for_next_time(tmp_path):
    path = tmp_path / "metrics.jsonl"
    whole = _line(2)
    path.write_text(_line(1) + whole[:7])
    tail = JsonlTail(path)
    assert [r["step"] for r in tail.read()] == [1]
    with open(path, "a") as fh:
        fh.write(whole[7:])
    assert [r["step"] for r in tail.read()] == [1, 2]


def test_a_truncated_or_replaced_file_is_read_again(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1) + _line(2) + _line(3))
    tail = JsonlTail(path)
    assert len(tail.read()) == 3
    with open(path, "r+") as fh:  # truncated in place (shorter)
        fh.truncate(len(_line(1)))
    assert [r["step"] for r in tail.read()] == [1] and tail.rereads == 1
    atomic_write_text(path, _line(7) + _line(8))  # replaced (resume rewrites it with a rename)
    assert [r["step"] for r in tail.read()] == [7, 8] and tail.rereads == 2
    os.remove(path)
    assert tail.read() == []
    path.write_text(_line(9))
    assert [r["step"] for r in tail.read()] == [9] and tail.rereads == 3


def test_a_bad_line_is_skipped_as_the_full_reader_does(tmp_path):
    from tunesmith.core.train.rundir import _read_jsonl

    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1) + "not json\n" + _line(2) + '{"step": 3')
    assert read_appended(path) == _read_jsonl(path, 0) == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}]
