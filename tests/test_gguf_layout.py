"""Prompt templates as fixed layouts: the Jinja written into GGUF files and the Ollama Go template (no llama.cpp)."""

from __future__ import annotations

import pytest

from tunesmith.core.export.chat_layout import CHECKS, layout_for

CONVERSATION = [{"role": "system", "content": "You are Melody."}, {"role": "user", "content": "Hi!\nWho are you?"},
                {"role": "assistant", "content": "I am Melody."}, {"role": "user", "content": "And \"why\"?"}]


def _jinja(template_text, messages):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment().from_string(template_text).render(messages=messages,
                                                                             add_generation_prompt=True)


@pytest.mark.parametrize("name", ["chat_template", "qwen_chat", "llama2_chat", "llama3_chat", "internlm2_chat",
                                  "vicuna", "gemma", "zephyr"])
def test_layout_and_its_jinja_reproduce_the_training_layout(name, tokenizer):
    from tunesmith.core.data.templates import build_chat_prompt

    layout = layout_for(name, tokenizer)
    assert layout is not None, name
    for messages in [*CHECKS, CONVERSATION, CONVERSATION[1:]]:
        expected = build_chat_prompt(name, tokenizer, messages)
        assert layout.render(messages) == expected, (name, messages)
        assert _jinja(layout.jinja(), messages) == expected, (name, messages)


def test_round_numbered_templates_have_no_fixed_layout(tokenizer):
    assert layout_for("chatglm2", tokenizer) is None  # "[Round 1]", "[Round 2]" ...


def test_go_template_of_the_smollm2_chat_template(tokenizer):
    go = layout_for("chat_template", tokenizer).go()
    assert go.startswith('{{- $prev := "start" }}\n{{- range .Messages }}')
    # SmolLM2's own template adds its default system text when a chat has none: so does the Go one
    assert ('{{ if eq $prev "start" }}{{ "<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, '
            'trained by Hugging Face<|im_end|>\\n<|im_start|>user\\n" }}') in go
    assert go.endswith('{{- if eq $prev "user" }}{{ "<|im_end|>\\n<|im_start|>assistant\\n" }}{{ end }}')
    assert go.count("{{") == go.count("}}")


def test_modelfile_names_the_file_template_system_and_stop_words(tokenizer):
    from tunesmith.core.export.gguf import modelfile_text

    layout = layout_for("qwen_chat", tokenizer)
    text = modelfile_text("run-q8_0.gguf", layout=layout, stop_words=["<|im_end|>", "<|endoftext|>"],
                          system="You are Melody.", template="qwen_chat")
    lines = text.splitlines()
    assert lines[1] == "FROM ./run-q8_0.gguf"
    assert f'TEMPLATE """{layout.go()}"""' in text and 'SYSTEM """You are Melody."""' in lines
    assert lines[-2:] == ['PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|endoftext|>"']
    bare = modelfile_text("m.gguf", layout=None, stop_words=[])
    assert "TEMPLATE" not in bare and "chat template stored in the GGUF" in bare


def test_unknown_quant_type_lists_close_names():
    from tunesmith.core.errors import UserError
    from tunesmith.core.export.gguf import check_quant

    assert check_quant("Q4_K_M") == ("f16", "Q4_K_M") and check_quant("q8_0") == ("q8_0", None)
    with pytest.raises(UserError, match="Did you mean: q4_k_m"):
        check_quant("q4km")


def test_cli_refuses_a_bad_quant_type_in_one_line(capsys, tmp_path):
    from tunesmith.core.cli import main

    assert main(["convert", "gguf", str(tmp_path), str(tmp_path / "out"), "--quant", "q4km"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: quant: unknown GGUF type 'q4km'.") and "Did you mean: q4_k_m" in err


def test_converter_files_are_taken_from_the_sdists_vendored_llama_cpp(tmp_path):
    import io
    import tarfile

    from tunesmith.core.export.gguf import _extract_converter

    sdist = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    files = {"convert_hf_to_gguf.py": "print('converter')", "conversion/__init__.py": "", "gguf-py/gguf/__init__.py": "",
             "LICENSE": "MIT", "src/llama.cpp": "int main;", "convert_lora_to_gguf.py": ""}
    with tarfile.open(sdist, "w:gz") as tar:
        for rel, body in files.items():
            data = body.encode()
            info = tarfile.TarInfo(f"llama_cpp_python-9.9.9/vendor/llama.cpp/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target = tmp_path / "cache" / "llama-cpp-python-9.9.9"
    target.parent.mkdir()
    _extract_converter(sdist, target)
    got = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert got == ["LICENSE", "conversion/__init__.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
    assert not list(target.parent.glob("*.partial-*"))
