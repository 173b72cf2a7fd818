"""check-dataset / list-templates / list-map-fns through real subprocesses: exit codes, one-line errors.

All invocations start at once (they mostly wait on imports), so the whole file takes one CLI start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
EMPTY_ANSWER = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]}
ENDS_ON_USER = {"messages": [{"role": "user", "content": "Hi"}]}


def jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tokenizer_dir):
    d = tmp_path_factory.mktemp("cli")
    files = {
        "empty.jsonl": b"",
        "bad.json": b'[{"input": "a", "output": "b"},\n {"input" "c", "output": "d"}]\n',
        "qa.jsonl": jsonl([{"question": "q", "answer": "a"}]).encode(),
        "latin1.jsonl": '{"input": "a", "output": "b"}\n{"input": "caf\u00e9", "output": "x"}\n'.encode("latin-1"),
        "empty_answer.jsonl": jsonl([EMPTY_ANSWER]).encode(),
        "ends_on_user.jsonl": jsonl([ENDS_ON_USER]).encode(),
        "mixed.jsonl": jsonl([GOOD, EMPTY_ANSWER, GOOD, ENDS_ON_USER, GOOD]).encode(),
    }
    for name, content in files.items():
        (d / name).write_bytes(content)
    tok = str(tokenizer_dir)

    def check(data, *extra):
        return ["check-dataset", "--data", str(d / data), "--tokenizer", tok, *extra]

    commands = {
        "missing": check("nope.json"),
        "empty": check("empty.jsonl"),
        "invalid_json": check("bad.json"),
        "wrong_columns": check("qa.jsonl", "--map-fn", "alpaca"),
        "not_utf8": check("latin1.jsonl"),
        "empty_answer": check("empty_answer.jsonl"),
        "ends_on_user": check("ends_on_user.jsonl"),
        "no_tokenizer": check("mixed.jsonl", "--tokenizer", str(d / "no-such-tokenizer")),
        "max_length": check("mixed.jsonl", "--template", "internlm2_chat", "--max-length", "5"),
        "unknown_template": check("mixed.jsonl", "--template", "internlm2chat"),
        "json_ok": check("mixed.jsonl", "--template", "internlm2_chat", "--json", "--show", "2"),
        "human_ok": check("mixed.jsonl", "--template", "internlm2_chat", "--show", "1"),
        "list_templates": ["list-templates"],
        "list_map_fns": ["list-map-fns"],
    }
    procs = {name: subprocess.Popen([sys.executable, "-m", "tunesmith", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name, args in commands.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[name] = (proc.returncode, stdout, stderr)
    return out, d


@pytest.mark.parametrize("case,expected", [
    ("missing", "nope.json does not exist"),
    ("empty", "empty.jsonl is empty"),
    ("invalid_json", "bad.json is not valid JSON: Expecting ':' delimiter at line 2, column 11"),
    ("wrong_columns", "map_fn 'alpaca' needs column(s) instruction, output, which the data does not have. "
                      "Columns present: question, answer. Fix: Map these columns: map_fn columns with --columns "
                      "input=question,output=answer."),
    ("not_utf8", "latin1.jsonl is not UTF-8 text: byte 0xe9 at line 2, column 15"),
    ("empty_answer", "all 1 row(s) were dropped: 1 empty answer (first: row 0)"),
    ("ends_on_user", "all 1 row(s) were dropped: 1 conversation ends on a user turn (no answer) (first: row 0)"),
    ("no_tokenizer", "no-such-tokenizer does not exist"),
    ("max_length", "max_length 5 is smaller than the template's own overhead: internlm2_chat puts 11 tokens"),
    ("unknown_template", "unknown prompt template 'internlm2chat'. Fix: Did you mean: internlm2_chat,"),
])
@pytest.mark.slow  # over 2.5 s: kept out of make test-fast
def test_bad_input_is_one_line_and_exit_2(runs, case, expected):
    code, stdout, stderr = runs[0][case]
    assert code == 2, (stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert expected in lines[0]
    assert "Traceback" not in stderr + stdout


@pytest.mark.slow  # the `runs` fixture starts every CLI case as a subprocess (about 12 s)
def test_json_lines_are_first_surviving_samples_in_file_order(runs):
    code, stdout, stderr = runs[0]["json_ok"]
    assert code == 0, stderr
    samples = [json.loads(line) for line in stdout.splitlines()]
    assert [s["index"] for s in samples] == [0, 2]  # row 1 (empty answer) is dropped
    first = samples[0]
    assert first["input_ids"] == [1, 1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198, 19556, 17, 2, 198]
    assert first["labels"] == [-100] * 11 + [19556, 17, 2, -100]
    assert first["text"] == "<|im_start|><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    assert "warning: 1 row(s) dropped: empty answer (first: row 1)" in stderr
    assert "Traceback" not in stderr


def test_human_output_marks_supervised_spans_and_stats(runs):
    code, stdout, stderr = runs[0]["human_ok"]
    assert code == 0, stderr
    assert "map_fn: openai   template: internlm2_chat" in stdout
    assert "<|im_start|>assistant\n[[Hello!<|im_end|>]]" in stdout
    assert "rows: 5   kept: 3   dropped: 2" in stdout
    assert "dropped 1: conversation ends on a user turn (no answer) (first at row 3)" in stdout


def test_list_verbs(runs):
    code, stdout, _ = runs[0]["list_templates"]
    assert code == 0 and len(stdout.splitlines()) == 28
    assert stdout.splitlines()[-1].startswith("chat_template")
    code, stdout, _ = runs[0]["list_map_fns"]
    names = [line.split()[0] for line in stdout.splitlines()[1:]]
    assert code == 0 and {"alpaca", "openai", "sharegpt", "colors", "columns", "msagent_react"} <= set(names)


def test_check_dataset_dpo_in_process(capsys, tmp_path, tokenizer_dir):
    from tunesmith.core.cli import main

    path = tmp_path / "pairs.jsonl"
    path.write_text(jsonl([{"prompt": "2+2?", "chosen": "4", "rejected": "5"},
                           {"prompt": "Hi", "chosen": "Hello", "rejected": "Hello"}]))
    code = main(["check-dataset", "--stage", "dpo", "--data", str(path), "--tokenizer", str(tokenizer_dir),
                 "--template", "internlm2_chat", "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    assert json.loads(out.splitlines()[0]) == {"index": 0, "prompt": "<|im_start|><|im_start|>user\n2+2?<|im_end|>\n"
                                               "<|im_start|>assistant\n", "chosen": "4<|im_end|>",
                                               "rejected": "5<|im_end|>"}
    assert "1 row(s) dropped: chosen and rejected are identical" in err
