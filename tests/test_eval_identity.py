"""Did tuning help? The identity demo (SmolLM2 taught that it is "Melody") evaluated against its base on
questions it never trained on (assets/identity_test.json). Slow: trains the demo once (a few minutes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.paths import REPO_ROOT

TEST_FILE = REPO_ROOT / "assets" / "identity_test.json"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, embedded_model_dir) -> Path:
    """The demo, trained once for this module with the settings of `python -m core demo` (about 3 minutes
    on a free 2-core CPU). TUNESMITH_TEST_DEMO_RUN=DIR reuses a finished `python -m core demo --work-dir DIR`
    instead: a copy of it is evaluated, so DIR is left as it was."""
    import shutil

    from core.train.demo import demo_config
    from core.train.launcher import run_here
    from core.train.rundir import RunDir

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
    assert not questions(TEST_FILE) & questions(REPO_ROOT / "assets" / "identity.json")


@pytest.mark.slow
def test_tuned_identity_model_beats_its_base_on_held_out_questions(demo_run):
    from core.eval.report import format_table, read_results
    from core.eval.runner import evaluate

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
    # The references are whole sentences and the tuned model blends the training answers' wordings
    # ("I am Melody, a language model assistant created by ..."), so exact match stays near 0 on both
    # sides; it must not be worse.
    assert tuned["exact_match"] >= base["exact_match"] == 0.0
    for key in ("rouge_l", "loss", "bleu", "chrf"):
        assert s["tests"][key]["significant"] and s["tests"][key]["better"] == "tuned", s["tests"][key]
    assert "the tuned model is better at" in s["verdict"]
    summary, rows = read_results(result.out_dir)
    assert summary["tuned"]["rouge_l"] == tuned["rouge_l"] and len(rows) == 10
    assert [r["index"] for r in rows] == [r["index"] for r in result.examples]
