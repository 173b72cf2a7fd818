"""DPO and ORPO through TRL on a tiny Llama, in this process (tunesmith.core.train.launcher.run_here)."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from tunesmith.core.train.launcher import run_here
from tunesmith.core.train.rundir import RunDir
from toy import preference_rows, toy_config, write_json


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_json(preference_rows(24), tmp_path_factory.mktemp("pref") / "pairs.json")


def _run(tmp_path, model_dir, data, stage: str, extra: list[str]):
    run_dir = tmp_path / stage
    cfg = toy_config(model_dir, data, run_dir, [f"method.stage={stage}", "training.max_steps=6",
                                                "training.save_steps=0", "data.max_length=64",
                                                "method.max_prompt_length=32", *extra])
    status = run_here(cfg)
    train = [m for m in RunDir(run_dir).read_metrics() if m["kind"] == "train"]
    return run_dir, status, train


@pytest.mark.slow
def test_dpo_with_lora_prefers_the_chosen_answer(tmp_path, tiny_model_dir, pairs):
    run_dir, status, train = _run(tmp_path, tiny_model_dir, pairs, "dpo", ["training.learning_rate=0.01",
                                                                          "method.pref_beta=0.1"])
    assert status["state"] == "finished", status
    assert len(train) == 6
    # DPO starts at log(2) (adapter disabled == reference) and falls as chosen pulls away from rejected
    assert abs(train[0]["loss"] - 0.6931) < 0.01, train[0]
    assert train[-1]["loss"] < train[0]["loss"] - 0.05, [t["loss"] for t in train]
    assert train[-1]["rewards/margins"] > 0
    assert all(t["tokens_seen"] > 0 for t in train)
    adapter = load_file(RunDir(run_dir).latest_checkpoint() / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter) and not any(".ref." in k for k in adapter)


@pytest.mark.slow
def test_orpo_full_finetune_lowers_its_loss(tmp_path, tiny_model_dir, pairs):
    run_dir, status, train = _run(tmp_path, tiny_model_dir, pairs, "orpo", ["method.finetuning=full",
                                                                           "training.learning_rate=0.002"])
    assert status["state"] == "finished", status
    assert len(train) == 6
    assert train[-1]["loss"] < train[0]["loss"] - 0.5, [t["loss"] for t in train]
    assert (RunDir(run_dir).latest_checkpoint() / "model.safetensors").is_file()


# ---- issue 9: prompts that fill max_length ---------------------------------------------------------------

LONG_PROMPT = "Please read this long story carefully. " * 30  # about 240 tokens, max_length is 64


def _long_pairs(tmp_path, n_long: int, n_short: int):
    from toy import ANSWER

    rows = [{"prompt": LONG_PROMPT + f"Question {i}?", "chosen": ANSWER, "rejected": "I am a large language model."}
            for i in range(n_long)]
    rows += [{"prompt": f"Who are you, {i}?", "chosen": ANSWER, "rejected": "I am a large language model."}
             for i in range(n_short)]
    rows.sort(key=lambda r: r["prompt"][-3:])  # interleave the long and the short ones
    return write_json(rows, tmp_path / "long_prompts.json"), rows


@pytest.mark.parametrize("template", ["chat_template", "internlm2_chat"])
def test_check_dataset_counts_pairs_whose_answers_are_cut_away(capsys, tmp_path, tokenizer_dir, template):
    from tunesmith.core.cli import main
    from tunesmith.core.data.preference import prompt_fills_reason

    path, rows = _long_pairs(tmp_path, 5, 3)
    first_long = next(i for i, r in enumerate(rows) if r["prompt"].startswith(LONG_PROMPT))
    code = main(["check-dataset", "--stage", "orpo", "--data", str(path), "--tokenizer", str(tokenizer_dir),
                 "--template", template, "--max-length", "64", "--show", "0"])
    out, err = capsys.readouterr()
    assert code == 0
    assert f"warning: 5 row(s) dropped: {prompt_fills_reason(64)} (first: row {first_long})" in err
    assert "rows: 8   pairs kept: 3   dropped: 5   answers cut to max_length: 0" in out
    code = main(["check-dataset", "--stage", "dpo", "--data", str(_long_pairs(tmp_path, 4, 0)[0]), "--tokenizer",
                 str(tokenizer_dir), "--template", template, "--max-length", "64"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "all 4 row(s) were dropped: 4 the prompt fills max_length (64 tokens)" in err
    assert "Fix: Raise data.max_length" in err


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["orpo", "dpo"])
def test_every_prompt_filling_max_length_fails_the_run_with_the_reason(tmp_path, tiny_model_dir, stage):
    path, _ = _long_pairs(tmp_path, 6, 0)
    run_dir, status, train = _run(tmp_path, tiny_model_dir, path, stage, ["method.finetuning=full"])
    assert status["state"] == "failed" and status["kind"] == "bad_data", status
    assert "the prompt fills max_length (64 tokens)" in status["error"] and "Raise data.max_length" in status["advice"]
    assert train == []


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["orpo", "dpo"])
def test_the_trainer_refuses_pairs_left_without_answers_even_if_the_data_check_missed_them(
        tmp_path, tiny_model_dir, stage, monkeypatch):
    import tunesmith.core.data.preference as preference

    monkeypatch.setattr(preference, "_check_lengths", lambda *a, **k: None)
    path, _ = _long_pairs(tmp_path, 6, 0)
    run_dir, status, train = _run(tmp_path, tiny_model_dir, path, stage, ["method.finetuning=full"])
    assert status["state"] == "failed" and status["kind"] == "bad_data", status
    assert "keeps an answer token within data.max_length 64" in status["error"], status
    assert train == []


@pytest.mark.slow
def test_orpo_with_some_long_prompts_trains_on_the_others_with_a_real_loss(tmp_path, tiny_model_dir):
    """Before: a pair without answer tokens made the batch's loss NaN (logged 0.0, grad_norm null)."""
    import math

    path, _ = _long_pairs(tmp_path, 6, 6)
    run_dir, status, train = _run(tmp_path, tiny_model_dir, path, "orpo", ["method.finetuning=full",
                                                                          "training.max_steps=3"])
    assert status["state"] == "finished", status
    assert status["dataset"]["dropped_total"] == 6 and status["dataset"]["kept"] == 6, status["dataset"]
    assert len(train) == 3
    assert all(math.isfinite(t["loss"]) and t["loss"] > 0 and t["grad_norm"] for t in train), train


def test_the_data_preview_of_a_preference_stage_counts_pairs_and_names_rows(tmp_path, tokenizer):
    """The Data tab's preview with method DPO/ORPO used to fail with 'Use build_preference_data'."""
    from tunesmith.core.config import DataConfig
    from tunesmith.core.data.preference import prompt_fills_reason
    from tunesmith.core.data.preview import preview

    path, rows = _long_pairs(tmp_path, 5, 3)
    short_rows = [i for i, r in enumerate(rows) if not r["prompt"].startswith(LONG_PROMPT)]
    result = preview(DataConfig(path=str(path), template="chat_template", max_length=64), tokenizer, stage="orpo")
    s = result.stats
    assert (s.rows, s.kept, s.dropped) == (8, 3, {prompt_fills_reason(64): 5})
    assert len(s.lengths) == 3 and 0 < s.supervised_tokens < s.total_tokens == sum(s.lengths) <= 3 * 64
    assert s.drop_examples[prompt_fills_reason(64)] == min(set(range(8)) - set(short_rows))
    assert [x.index for x in result.samples] == short_rows
    first = result.samples[0]
    assert first.segments[1] == (rows[short_rows[0]]["chosen"], True) and not first.segments[0][1]
    assert first.conversation[0]["rejected"] == rows[short_rows[0]]["rejected"]
    assert f"5 row(s) dropped: {prompt_fills_reason(64)} (first: row {s.drop_examples[prompt_fills_reason(64)]})" \
        in result.warnings()
