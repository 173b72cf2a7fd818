"""Bad input to convert/merge: one clear `error:` line, exit code 2, and nothing the user had is touched."""

from __future__ import annotations

import errno
import shutil

import pytest
from test_export_helpers import make_lora_run, tree_snapshot


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    run_dir, _ = make_lora_run(tmp_path_factory.mktemp("bad-input") / "run", tiny_model_dir, steps=(4,))
    return run_dir


@pytest.fixture(scope="module")
def other_base(tmp_path_factory, tokenizer_dir):
    from tiny import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("other-base") / "narrow", tokenizer_dir, hidden=32)


def cli(capsys, *argv):
    from tunesmith.core.cli import main

    code = main(["convert", *map(str, argv), "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error(err: str, *needles: str):
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_adapter_on_the_wrong_base_names_the_layer(capsys, lora_run, other_base, tmp_path):
    code, _, err = cli(capsys, "merge", other_base, lora_run, tmp_path / "out")
    line = assert_one_error(err, "does not fit base", "model.layers.0.", "hidden_size 64 vs 32")
    assert "trained on" in line and "Fix:" in line
    assert not (tmp_path / "out").exists() and code == 2


def test_missing_adapter_config(capsys, lora_run, tiny_model_dir, tmp_path):
    broken = tmp_path / "adapter"
    shutil.copytree(lora_run / "checkpoints" / "checkpoint-4", broken)
    (broken / "adapter_config.json").unlink()
    before = tree_snapshot(broken)

    code, _, err = cli(capsys, "merge", tiny_model_dir, broken, tmp_path / "m")
    assert code == 2
    assert_one_error(err, "adapter_config.json")
    code, _, err = cli(capsys, "to-hf", broken, tmp_path / "c")
    assert code == 2
    assert_one_error(err, "no adapter_config.json", "LORA")
    assert tree_snapshot(broken) == before


def test_output_not_empty_is_refused_then_replaced_with_overwrite(capsys, lora_run, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = cli(capsys, "to-hf", lora_run, out)
    assert code == 2
    assert_one_error(err, "exists and is not empty", "--overwrite")
    assert (out / "mine.txt").read_text() == "keep me"

    code, printed, _ = cli(capsys, "to-hf", lora_run, out, "--overwrite")
    assert code == 0 and printed.strip() == str(out.resolve())
    assert (out / "adapter_config.json").is_file() and not (out / "mine.txt").exists()


def test_output_overlapping_the_input_is_refused_even_with_overwrite(capsys, lora_run):
    ckpt = lora_run / "checkpoints" / "checkpoint-4"
    before = tree_snapshot(lora_run)
    for target in (ckpt, lora_run, lora_run / "checkpoints"):
        code, _, err = cli(capsys, "to-hf", lora_run, target, "--overwrite")
        assert code == 2
        assert_one_error(err, "Fix:")
    assert tree_snapshot(lora_run) == before


def test_unknown_template_lists_close_matches(capsys, lora_run, tmp_path):
    code, _, err = cli(capsys, "to-hf", lora_run, tmp_path / "o", "--prompt-template", "qwen_chatt")
    assert code == 2
    assert_one_error(err, "unknown prompt template 'qwen_chatt'", "qwen_chat")
    assert not (tmp_path / "o").exists()


def test_bad_shard_size_and_missing_source(capsys, lora_run, tmp_path):
    code, _, err = cli(capsys, "to-hf", lora_run, tmp_path / "o", "--max-shard-size", "lots")
    assert code == 2
    assert_one_error(err, "max shard size 'lots'")
    code, _, err = cli(capsys, "to-hf", tmp_path / "nope", tmp_path / "o")
    assert code == 2
    assert_one_error(err, "does not exist")


@pytest.mark.parametrize("verb", ["to-hf", "merge"])
def test_disk_full_leaves_nothing_half_written(capsys, monkeypatch, lora_run, tiny_model_dir, tmp_path, verb):
    import safetensors.torch

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    if verb == "merge":  # transformers writes shards through its own safetensors import
        import transformers.modeling_utils as mu

        monkeypatch.setattr(mu, "safe_save_file", full_disk, raising=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "previous.txt").write_text("old export")
    argv = [lora_run, out] if verb == "to-hf" else [tiny_model_dir, lora_run, out]
    code, _, err = cli(capsys, verb, *argv, "--overwrite")
    assert code == 2
    assert_one_error(err, "disk filled up", "No space left on device", "Fix:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no staging folder may remain"
    assert [p.name for p in out.iterdir()] == ["previous.txt"], "the previous export stays intact"
