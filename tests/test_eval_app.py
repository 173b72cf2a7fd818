"""Train tab: "Evaluate on a test set" and "Compare runs" callbacks, called as plain functions."""

from __future__ import annotations

import json
import time

import pytest

from tunesmith.app.callbacks import eval_cb
from tunesmith.app.settings import AppSettings
from tunesmith.core.config import RunConfig
from tunesmith.core.errors import UserError
from tunesmith.core.train.rundir import RunDir
from eval_helpers import make_run, write_qa_file


@pytest.fixture
def settings(tmp_path):
    s = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")})
    s.ensure_dirs()
    return s


def _fake_run(settings, name, overrides, losses, eval_losses=()):
    rd = RunDir(settings.runs_root / name)
    rd.path.mkdir(parents=True)
    RunConfig().with_overrides([f"output.name={name}", f"output.run_dir={rd.path}", *overrides]).save(rd.config_path)
    for step, loss in enumerate(losses, 1):
        rd.append_jsonl(rd.metrics_path, {"step": step, "kind": "train", "loss": loss, "eval_loss": None})
    for step, loss in eval_losses:
        rd.append_jsonl(rd.metrics_path, {"step": step, "kind": "eval", "loss": None, "eval_loss": loss})
    rd.write_status(state="finished", step=len(losses), total_steps=len(losses))
    return rd.path


def _summary(n=4, better="tuned"):
    side = {"label": "x", "loss": 2.0, "perplexity": 7.39, "exact_match": 0.0, "rouge_l": 0.1, "bleu": 1.0,
            "chrf": 10.0, "words": 5.0}
    test = {"n": n, "significant": better != "neither", "better": better, "wins": n, "losses": 0, "ties": 0,
            "p_value": 0.01, "mean_diff": 0.5, "low": 0.4, "high": 0.6}
    return {"name": "t", "n": n, "data": "t.json", "held_out": False, "base": side,
            "tuned": {**side, "loss": 1.0, "rouge_l": 0.7}, "verdict": "On 4 test examples, better.",
            "tests": {k: dict(test) for k in ("loss", "exact_match", "rouge_l", "bleu", "chrf")}, "finished_at": 1}


def test_compare_lists_exactly_the_changed_fields_and_one_curve_per_run_and_metric(settings):
    a = _fake_run(settings, "a", ["training.learning_rate=0.0001", "lora.r=8"], [3.0, 2.0, 1.5], [(3, 1.8)])
    b = _fake_run(settings, "b", ["training.learning_rate=0.0002", "lora.r=16"], [3.1, 2.5], [(2, 2.4)])
    c = _fake_run(settings, "c", ["training.learning_rate=0.0001", "lora.r=8"], [2.9])
    out_dir = a / "eval" / "identity"
    out_dir.mkdir(parents=True)
    (out_dir / "summary.json").write_text(json.dumps(_summary()))
    out = eval_cb.compare({"compare/runs": [str(a), str(b), str(c)], "top/lang": "en"}, settings)
    diff = out["compare/diff"]
    assert list(diff.columns) == ["field", "a", "b", "c"]
    assert diff.values.tolist() == [["lora.r", "8", "16", "8"], ["training.learning_rate", "0.0001", "0.0002", "0.0001"]]
    plot = out["compare/plot"]
    assert sorted(set(plot["series"])) == ["a · eval loss", "a · loss", "b · eval loss", "b · loss", "c · loss"]
    assert plot[plot["series"] == "a · loss"]["value"].tolist() == [3.0, 2.0, 1.5]
    assert plot[plot["series"] == "b · eval loss"][["step", "value"]].values.tolist() == [[2, 2.4]]
    evals = out["compare/evals"]
    assert evals[["run", "evaluation", "examples"]].values.tolist() == [["a", "identity", 4]]
    assert "2 setting(s) differ" in out["compare/status"]


def test_compare_needs_two_runs_of_this_app(settings, tmp_path):
    a = _fake_run(settings, "a", [], [1.0])
    with pytest.raises(UserError, match="at least two runs"):
        eval_cb.compare({"compare/runs": [str(a)]}, settings)
    with pytest.raises(UserError, match="at least two runs"):
        eval_cb.compare({"compare/runs": [str(a), str(a)]}, settings)
    with pytest.raises(UserError, match="outside the folders this app may use"):
        eval_cb.compare({"compare/runs": [str(a), str(tmp_path)]}, settings)
    with pytest.raises(UserError, match="not a run of this app"):
        eval_cb.compare({"compare/runs": [str(a), str(settings.uploads_dir)]}, settings)
    same = _fake_run(settings, "same", [], [1.0])
    out = eval_cb.compare({"compare/runs": [str(a), str(same)], "top/lang": "zh"}, settings)
    assert out["compare/diff"].empty and "设置相同" in out["compare/status"]


def test_results_show_the_verdict_the_table_and_best_and_worst(settings):
    rows = [{"index": i, "prompt": f"q{i}", "reference": "r", "gain": g, "outcome": o, "delta": {"loss": 0},
             "base": {"answer": "b", "rouge_l": 0.1, "loss": 2.0}, "tuned": {"answer": "t", "rouge_l": 0.1 + g,
                                                                           "loss": 1.0}}
            for i, g, o in [(0, 0.8, "win"), (1, -0.5, "loss"), (2, 0.3, "win"), (3, 0.0, "tie")]]
    out = eval_cb.results(_summary(), rows, "en")
    html = out["eval/summary"]
    assert "the tuned model is better at: loss, exact match, ROUGE-L, BLEU, chrF" in html
    assert "<td>ROUGE-L</td><td>0.100</td><td>0.700</td><td>+0.600</td><td>yes (4 better" in html
    assert out["eval/best"]["#"].tolist() == [0, 2] and out["eval/worst"]["#"].tolist() == [1]
    assert out["eval/examples"]["outcome"].tolist() == ["better", "worse", "better", "same"]
    zh = eval_cb.results(_summary(better="neither"), rows, "zh")
    assert "差异都不超过噪声" in zh["eval/summary"] and zh["eval/worst"]["outcome"].tolist() == ["更差"]


def test_start_checks_its_inputs(settings, tmp_path):
    with pytest.raises(UserError, match="no run is picked"):
        eval_cb.start({"eval/run": None, "top/lang": "en"}, settings)
    run = _fake_run(settings, "a", [], [1.0])
    with pytest.raises(UserError, match="whole number"):
        eval_cb.start({"eval/run": str(run), "eval/limit": 2.5}, settings)
    with pytest.raises(UserError):  # a test file outside the allowed folders
        eval_cb.start({"eval/run": str(run), "eval/data": "/etc/passwd"}, settings)
    with pytest.raises(UserError, match="not an evaluation folder"):
        eval_cb.poll({"eval/current": str(tmp_path)}, settings)
    assert eval_cb.poll({"eval/current": ""}, settings) == {}


@pytest.mark.slow  # a whole evaluation from the GUI: the fast tier keeps the cheaper tests of the same code
def test_evaluate_flow_from_start_to_results(settings, tiny_model_dir):
    data = write_qa_file(settings.uploads_dir / "qa.json")
    run = make_run(settings.runs_root / "tiny", tiny_model_dir, data)
    assert [v for _label, v in eval_cb.refresh({}, settings)["eval/run"]["choices"]] == [str(run)]
    out = eval_cb.start({"eval/run": str(run), "eval/data": str(data), "eval/limit": 4, "eval/max_new_tokens": 4,
                         "top/lang": "en"}, settings)
    current = out["eval/current"]
    assert current == str(run / "eval" / "qa") and out["eval/cmd"].startswith("python -m tunesmith evaluate ")
    values = {"eval/current": current, "eval/seen": "", "top/lang": "en"}
    deadline = time.monotonic() + 300
    polled = eval_cb.poll(values, settings)
    while "eval/summary" not in polled and time.monotonic() < deadline:
        assert 'data-state="failed"' not in polled["eval/progress"], polled["eval/failure"]
        time.sleep(1)
        polled = eval_cb.poll(values, settings)
    assert 'data-state="finished"' in polled["eval/progress"] and 'data-n="4"' in polled["eval/summary"]
    assert len(polled["eval/examples"]) == 4
    again = eval_cb.poll({**values, "eval/seen": polled["eval/seen"]}, settings)
    assert "eval/summary" not in again  # the tables are sent once, not every two seconds
    assert eval_cb.stop(values, settings)["eval/status"].count("not running") == 1
