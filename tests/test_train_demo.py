"""`python -m tunesmith demo`: the bundled SmolLM2-135M-Instruct learns its new name (slow: a few minutes on CPU)."""

from __future__ import annotations

import json

import pytest

from tunesmith.core.train.demo import DEMO_NAME, DEMO_QUESTION, HELD_OUT_QUESTIONS, ask
from tunesmith.core.train.rundir import RunDir


@pytest.mark.slow
def test_demo_run_answers_held_out_phrasings_with_the_new_name(demo_run):
    cfg, status = demo_run  # tests/conftest.py: trained once, also exported to GGUF by test_gguf_demo.py
    assert cfg.data.path.endswith("assets/identity.json")
    assert status["state"] == "finished", status
    losses = [m["loss"] for m in RunDir(cfg.output.run_dir).read_metrics() if m["kind"] == "train"]
    assert len(losses) == cfg.training.max_steps and losses[-1] < losses[0] / 3, losses
    seen = {row["messages"][0]["content"].lower().strip("?. ") for row in json.loads(open(cfg.data.path).read())}
    assert not seen & {q.lower().strip("?. ") for q in HELD_OUT_QUESTIONS}  # really held out
    samples = RunDir(cfg.output.run_dir).read_samples()
    before, after = samples[0], samples[-1]
    assert before["when"] == "before" and DEMO_NAME.lower() not in before["answer"].lower()  # not known before
    assert after["step"] == cfg.training.max_steps and DEMO_NAME.lower() in after["answer"].lower(), samples
    questions = [DEMO_QUESTION, *HELD_OUT_QUESTIONS, "What is the capital of France?"]
    tuned = ask(cfg, questions, RunDir(cfg.output.run_dir).latest_checkpoint())
    assert DEMO_NAME.lower() in tuned[0].lower(), tuned
    named = [DEMO_NAME.lower() in a.lower() for a in tuned[1:-1]]
    assert sum(named) >= len(named) - 1, tuned  # phrasings it never saw
    assert "paris" in tuned[-1].lower(), tuned  # and it still knows other things
