"""`python -m tunesmith chat`: piped input, EXIT/RESET, and one clear error line for bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_chat(capsys, monkeypatch, argv, stdin_text):
    from tunesmith.core.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin_text))
    code = main(["chat", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_piped_paragraphs_are_questions_and_reset_clears(capsys, monkeypatch, tiny_model_dir):
    from tunesmith.core.chat import ChatEngine, GenerationSettings

    args = [tiny_model_dir, "--prompt-template", "chat_template", "--temperature", "0", "--max-new-tokens", "6"]
    code, out, err = run_chat(capsys, monkeypatch, args, "First question\nstill first\n\nSecond\n\nRESET\n\nFirst question\nstill first\n")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3, out
    engine = ChatEngine.load(str(tiny_model_dir), template="chat_template",
                             settings=GenerationSettings(temperature=0, max_new_tokens=6))
    session = engine.new_session()
    assert lines[0] == session.chat("First question\nstill first")
    assert lines[1] == session.chat("Second")
    assert lines[2] == lines[0], "after RESET the same question gets the same first answer"
    assert "history cleared" in err and "template chat_template" in err

    code, out, _ = run_chat(capsys, monkeypatch, args + ["--no-streamer"], "First question\nstill first\n\nEXIT\n\nSecond\n")
    assert code == 0 and out.splitlines() == [lines[0]]


@pytest.mark.parametrize("argv,needles", [
    (["{tiny}", "--prompt-template", "internlm2chat"], ["unknown prompt template 'internlm2chat'", "internlm2_chat"]),
    (["{tiny}", "--system-template", "lawyers"], ["unknown system template 'lawyers'", "lawyer"]),
    (["{tiny}", "--top-p", "1.5"], ["top_p must be in (0, 1]"]),
    (["{tiny}/nope"], ["does not exist"]),
    (["{narrow}", "--adapter", "{run}"], ["does not fit base", "hidden_size 64 vs 32"]),
])
def test_bad_input_gives_one_error_line(capsys, monkeypatch, tiny_model_dir, tokenizer_dir, tmp_path, argv, needles):
    from test_export_helpers import make_lora_run, tree_snapshot
    from tiny import make_tiny_llama

    paths = {"tiny": tiny_model_dir}
    if any("{narrow}" in a or "{run}" in a for a in argv):
        paths["narrow"] = make_tiny_llama(tmp_path / "narrow", tokenizer_dir, hidden=32)
        paths["run"], _ = make_lora_run(tmp_path / "run", tiny_model_dir, steps=(1,))
    before = tree_snapshot(tmp_path)
    code, out, err = run_chat(capsys, monkeypatch, [a.format(**paths) for a in argv], "hi\n")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in errors[0]
    assert out == "" and tree_snapshot(tmp_path) == before


def test_system_and_system_template_are_exclusive(capsys, monkeypatch, tiny_model_dir):
    with pytest.raises(SystemExit) as exc:
        run_chat(capsys, monkeypatch, [tiny_model_dir, "--system", "x", "--system-template", "coder"], "")
    assert exc.value.code == 2


@pytest.mark.slow
def test_embedded_smollm2_answers_a_piped_question(embedded_model_dir):
    from tunesmith.core.paths import child_env

    env = child_env()
    proc = subprocess.run([sys.executable, "-m", "tunesmith", "chat", "embedded:SmolLM2-135M-Instruct",
                           "--temperature", "0", "--max-new-tokens", "30"],
                          input="What is the capital of France?\n", capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout
    assert "Traceback" not in proc.stderr
