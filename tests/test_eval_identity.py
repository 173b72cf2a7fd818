"""Did tuning help? The identity demo (SmolLM2 taught that it is "Melody") evaluated against its base on
questions it never trained on (assets/identity_test.json). Slow: trains the demo once (a few minutes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tunesmith.core.paths import PACKAGE_ROOT

TEST_FILE = PACKAGE_ROOT / "assets" / "identity_test.json"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, embedded_model_dir) -> Path:
    """The demo, trained once for this module with the settings of `python -m tunesmith demo` (about 3 minutes
    on a free 2-core CPU). TUNESMITH_TEST_DEMO_RUN=DIR reuses a finished `python -m tunesmith demo --work-dir DIR`
    instead: a copy of it is evaluated, so DIR is left as it was."""
    import shutil

    from tunesmith.core.train.demo import demo_config
    from tunesmith.core.train.launcher import run_here
    from tunesmith.core.train.rundir import RunDir

    given = os.environ.get("TUNESMITH_TEST_DEMO_RUN")
    if given:
        assert RunDir(given).read_status().get("state") == "finished", f"{given} is not a finished demo run"
        copy = tmp_path_factory.mktemp("eval-demo") / "demo"
        shutil.copytree(given, copy, ignore=shutil.ignore_patterns("eval", "tensorboard"))
        return copy
    cfg = demo_config(str(tmp_path_factory.mktemp("eval-demo") / "demo"))
    status = run_here(cfg)
    assert status["state"] == "finished", status
    return Path(cfg.output.run_dir)


def test_the_test_file_is_held_out_from_the_training_file():
    def questions(path):
        return {r["messages"][0]["content"].lower().strip("?.！？。 ") for r in json.loads(Path(path).read_text())}

    assert len(questions(TEST_FILE)) == 10
    assert not questions(TEST_FILE) & questions(PACKAGE_ROOT / "assets" / "identity.json")


def test_every_test_row_accepts_the_training_phrasings_of_its_answer():
    """Each held-out question accepts every answer wording the identity data uses for its language
    (they all state the name and the maker), so an answer in a training wording is an exact match."""
    import re

    train = {r["messages"][-1]["content"] for r in json.loads((PACKAGE_ROOT / "assets" / "identity.json").read_text())}
    for row in json.loads(TEST_FILE.read_text()):
        zh = bool(re.search(r"[\u4e00-\u9fff]", row["messages"][-1]["content"]))
        same_language = {a for a in train if bool(re.search(r"[\u4e00-\u9fff]", a)) == zh}
        assert same_language <= {row["messages"][-1]["content"], *row["references"]}, row["messages"][0]
        assert all("Melody" in r for r in row["references"])


@pytest.mark.slow
def test_tuned_identity_model_beats_its_base_on_held_out_questions(demo_run):
    from tunesmith.core.eval.report import format_table, read_results
    from tunesmith.core.eval.runner import evaluate

    result = evaluate(str(demo_run), str(TEST_FILE), max_new_tokens=40, name="identity")
    s = result.summary
    print(format_table(s))
    base, tuned = s["base"], s["tuned"]
    assert s["n"] == 10 and result.out_dir == demo_run / "eval" / "identity"
    assert sum("melody" in r["tuned"]["answer"].lower() for r in result.examples) >= 9
    assert not any("melody" in r["base"]["answer"].lower() for r in result.examples)
    # Measured (CPU, 12 demo steps): loss 2.91 -> 0.43, ROUGE-L 0.11 -> 0.55, BLEU 0.9 -> 33.7, chrF 19 -> 53.
    assert tuned["loss"] < base["loss"] - 1.5 and tuned["perplexity"] < base["perplexity"] / 5
    assert tuned["rouge_l"] >= base["rouge_l"] + 0.3
    assert tuned["bleu"] >= base["bleu"] + 20 and tuned["chrf"] >= base["chrf"] + 20
    # Each row accepts every wording the training data gives its answer, and short forms like "I am
    # Melody" for the name questions (the `references` field); the tuned model's answer or its leading
    # clause matches one on 7 of 10 (measured), the base model never says "Melody".
    assert base["exact_match"] == 0.0 and tuned["exact_match"] >= 0.5
    assert s["tests"]["exact_match"]["better"] == "tuned" and s["tests"]["exact_match"]["losses"] == 0
    assert tuned["contains"] >= tuned["exact_match"] and base["contains"] == 0.0
    for key in ("rouge_l", "loss", "bleu", "chrf"):
        assert s["tests"][key]["significant"] and s["tests"][key]["better"] == "tuned", s["tests"][key]
    assert "the tuned model is better at" in s["verdict"]
    summary, rows = read_results(result.out_dir)
    assert summary["tuned"]["rouge_l"] == tuned["rouge_l"] and len(rows) == 10
    assert [r["index"] for r in rows] == [r["index"] for r in result.examples]
    assert all(len(r["references"]) >= 9 for r in rows)
    harness = s["lm_eval"]
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        assert "not installed" in harness["skipped"]
    else:
        # lm-evaluation-harness's own exact match over the same prompts and accepted references
        print("lm-eval:", harness)
        # measured 0.0 vs 0.5: stricter than ours (articles kept), so the margin asked is smaller
        assert harness["base"]["exact_match"] == 0.0 and harness["tuned"]["exact_match"] >= 0.3
