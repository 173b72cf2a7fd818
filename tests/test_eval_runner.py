"""tunesmith.core.eval.runner on a tiny random Llama with a random LoRA adapter (quick; no training)."""

from __future__ import annotations

import json
import math

import pytest

from tunesmith.core.errors import UserError
from tunesmith.core.eval.runner import EvalRequest, EvalStopped, evaluate, make_plan
from eval_helpers import QA, make_run, write_qa_file


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("eval-run")
    data = write_qa_file(root / "qa.json")
    return make_run(root / "run", tiny_model_dir, data), data


@pytest.mark.slow  # loads two models: the fast tier keeps the cheaper tests of the same code
def test_losses_match_the_models_own_loss_on_the_pipeline_masks(tiny_run, tiny_model_dir, tokenizer):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunesmith.core.data.encode import make_encoder

    run, data = tiny_run
    result = evaluate(EvalRequest(str(run), data=str(data), max_new_tokens=4, batch_size=3, name="masks"))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                                      str(run / "checkpoints" / "checkpoint-2")).eval()
    encoder = make_encoder(tokenizer, "chat_template", 128)
    for row in result.examples:
        q, a = QA[row["index"]]
        enc = encoder.encode_batch([[{"input": q, "output": a}]])[0]
        ids, labels = torch.tensor([enc.input_ids]), torch.tensor([enc.labels])
        with torch.no_grad():
            tuned = float(model(input_ids=ids, labels=labels).loss)
            with model.disable_adapter():
                base = float(model(input_ids=ids, labels=labels).loss)
        # batched with padding (3 per batch), yet each example's loss is the unpadded one
        assert row["tuned"]["loss"] == pytest.approx(tuned, rel=1e-4)
        assert row["base"]["loss"] == pytest.approx(base, rel=1e-4)
    s = result.summary
    assert s["n"] == len(QA) and s["template"] == "chat_template" and s["map_fn"] == "openai"
    assert s["tuned"]["perplexity"] == pytest.approx(math.exp(s["tuned"]["loss"]))
    assert s["base"]["loss"] != s["tuned"]["loss"]


@pytest.mark.slow  # generates every answer twice: the fast tier keeps the cheaper tests of the same code
def test_batched_left_padded_answers_equal_one_at_a_time(tiny_run):
    run, data = tiny_run
    one = evaluate(EvalRequest(str(run), data=str(data), max_new_tokens=6, batch_size=1, name="one"))
    many = evaluate(EvalRequest(str(run), data=str(data), max_new_tokens=6, batch_size=10, name="many"))
    answers = {r["index"]: (r["base"]["answer"], r["tuned"]["answer"]) for r in one.examples}
    assert {r["index"]: (r["base"]["answer"], r["tuned"]["answer"]) for r in many.examples} == answers
    assert any(b != t for b, t in answers.values())  # the adapter changes the answers


@pytest.mark.slow  # a whole evaluation (tens of seconds on a busy CPU): make test runs it, make test-fast does not
def test_held_out_split_is_the_runs_eval_split(tiny_run, tokenizer):
    from tunesmith.core.config import RunConfig
    from tunesmith.core.data.pipeline import build_sft_data

    run, _ = tiny_run
    result = evaluate(EvalRequest(str(run), max_new_tokens=2))
    cfg = RunConfig.load(run / "config.yaml")
    built = build_sft_data(cfg.data, tokenizer, stage="sft", seed=cfg.training.seed)
    eval_text = [tokenizer.decode(r["input_ids"]) for r in built.eval]
    train_text = " ".join(tokenizer.decode(r["input_ids"]) for r in built.train)
    refs = [r["reference"] for r in result.examples]
    assert len(refs) == 4 and result.summary["held_out"] and result.out_dir == run / "eval" / "held-out"
    assert all(any(ref in text for text in eval_text) for ref in refs)
    assert not any(QA[r["index"]][0] in train_text for r in result.examples)


def test_results_files_are_ordered_biggest_difference_first(tiny_run):
    run, data = tiny_run
    result = evaluate(EvalRequest(str(run), data=str(data), max_new_tokens=4, limit=5, name="files", lm_eval=False))
    rows = [json.loads(line) for line in (result.out_dir / "examples.jsonl").read_text().splitlines()]
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert summary["n"] == 5 and [r["index"] for r in rows] == [r["index"] for r in result.examples]
    keys = [(abs(r["gain"]), abs(r["delta"]["loss"])) for r in rows]
    assert keys == sorted(keys, reverse=True)
    assert set(summary["tests"]) == {"loss", "exact_match", "contains", "rouge_l", "bleu", "chrf"}
    assert summary["lm_eval"]["skipped"]
    assert all(set(r["tuned"]) >= {"answer", "loss", "exact_match", "contains", "rouge_l", "bleu", "chrf", "words"}
               for r in rows)
    assert all(r["references"] == [r["reference"]] for r in rows)  # no references field: the answer alone


@pytest.mark.slow  # two evaluations (tens of seconds on a busy CPU): make test runs it, make test-fast does not
def test_against_a_separately_loaded_base_gives_the_same_base_numbers(tiny_run, tiny_model_dir):
    run, data = tiny_run
    off = evaluate(EvalRequest(str(run), data=str(data), max_new_tokens=3, limit=3, name="off"))
    sep = evaluate(EvalRequest(str(run), data=str(data), max_new_tokens=3, limit=3, name="sep",
                               against=str(tiny_model_dir)))
    assert sep.summary["base"]["loss"] == pytest.approx(off.summary["base"]["loss"], rel=1e-5)
    assert sep.summary["settings"]["against"] == str(tiny_model_dir)


def test_stop_between_batches(tiny_run):
    run, data = tiny_run
    calls = []
    with pytest.raises(EvalStopped):
        evaluate(EvalRequest(str(run), data=str(data), batch_size=2, name="stopped"),
                 should_stop=lambda: len(calls) > 2, progress=lambda f, m: calls.append(m))
    assert calls == ["reading the test data", "loading the models", "base: loss 2/10"]  # the next batch never ran
    assert not (run / "eval" / "stopped" / "summary.json").exists()


def test_user_errors_say_what_to_do(tmp_path, tiny_run, tiny_model_dir):
    run, data = tiny_run
    no_split = make_run(tmp_path / "nosplit", tiny_model_dir, data, eval_size=0)
    with pytest.raises(UserError, match="nothing was held out") as exc:
        make_plan(EvalRequest(str(no_split)))
    assert "--data" in exc.value.fix
    with pytest.raises(UserError, match="cannot tell which base model"):
        make_plan(EvalRequest(str(tiny_model_dir), data=str(data)))
    with pytest.raises(UserError, match="does not exist"):
        make_plan(EvalRequest(str(run), data=str(tmp_path / "missing.json")))
    with pytest.raises(UserError, match="evaluation name"):
        make_plan(EvalRequest(str(run), data=str(data), name="../x"))
    with pytest.raises(UserError, match="limit"):
        make_plan(EvalRequest(str(run), limit=-1))


@pytest.mark.slow  # a whole evaluation (tens of seconds on a busy CPU): make test runs it, make test-fast does not
def test_a_test_file_in_another_format_is_mapped_by_guessing(tiny_run, tmp_path):
    run, _ = tiny_run
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in QA[:3]))
    result = evaluate(EvalRequest(str(run), data=str(alpaca), max_new_tokens=2, name="alpaca"))
    from tunesmith.core.data.map_fns import suggest_map_fn

    guessed = suggest_map_fn(["instruction", "input", "output"], {"instruction": QA[0][0], "input": "", "output": ""})
    assert result.summary["map_fn"] == guessed != "openai" and result.summary["n"] == 3  # as the Data tab guesses
    assert {r["reference"] for r in result.examples} == {a for _, a in QA[:3]}


def test_a_references_field_adds_accepted_answers(tiny_run, tmp_path):
    from tunesmith.core.eval.metrics import exact_match

    run, _ = tiny_run
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
             "references": ["Melody", a]} for q, a in QA[:3]]
    rows[1]["references"] = "just one"
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(rows))
    result = evaluate(EvalRequest(str(run), data=str(path), max_new_tokens=2, name="refs", lm_eval=False))
    by_index = {r["index"]: r for r in result.examples}
    assert by_index[0]["references"] == [QA[0][1], "Melody"]  # the row's answer first, no repeat
    assert by_index[1]["references"] == [QA[1][1], "just one"]
    for r in result.examples:  # the stored scores are the max over every accepted answer
        for side in ("base", "tuned"):
            assert r[side]["exact_match"] == exact_match(r[side]["answer"], r["references"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**rows[0], "references": {"a": 1}}]))
    with pytest.raises(UserError, match="row 0: 'references' must be a text or a list"):
        evaluate(EvalRequest(str(run), data=str(bad), max_new_tokens=2, name="bad", lm_eval=False))


@pytest.mark.slow  # a whole evaluation (tens of seconds on a busy CPU): make test runs it, make test-fast does not
def test_lm_eval_harness_scores_the_same_examples(tiny_run, tmp_path):
    pytest.importorskip("lm_eval")
    run, data = tiny_run
    result = evaluate(EvalRequest(str(run), data=str(data), max_new_tokens=4, limit=4, name="harness"))
    harness = result.summary["lm_eval"]
    assert "skipped" not in harness and harness["output_type"] == "generate_until", harness
    for side in ("base", "tuned"):
        assert "error" not in harness[side], harness[side]
        # a random tiny model answers none of them; both implementations must agree on that
        assert harness[side]["exact_match"] == result.summary[side]["exact_match"] == 0.0
    assert not list(result.out_dir.parent.glob(".*lm_eval_task.jsonl"))  # the task file is cleaned up
