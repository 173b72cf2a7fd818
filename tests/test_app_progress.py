"""Issue 12 items 6 and 7: progress that never looks frozen. The trainer's phase (loading, tokenising,
"before" answers, steps, saving, "after" answers) is shown with its own progress, elapsed time
counts from Start over every attempt, a run that is not training shows no ETA, every tab carries a
banner while a run is active, and the runs list follows the steps."""

from __future__ import annotations

import json
import os

import pytest

from tunesmith.app.callbacks import train_cb
from tunesmith.app.form import gui_default_config
from tunesmith.app.render_train import phase_text, progress_html, run_choice, run_elapsed
from tunesmith.app.settings import AppSettings
from tunesmith.core.train.rundir import RunDir


@pytest.fixture
def settings(tmp_path):
    s = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")})
    s.ensure_dirs()
    return s


def _run(settings, name="r1", **status):
    rd = RunDir(settings.runs_root / name)
    gui_default_config().save(rd.config_path)
    rd.write_status(pid=os.getpid(), **status)
    return rd


@pytest.mark.parametrize("phase,done,total,en,zh", [
    ("loading_model", None, None, "Loading the model…", "正在加载模型…"),
    ("tokenizing", None, 54, "Tokenising 54 rows…", "正在分词 54 行…"),
    ("tokenizing", None, None, "Reading and tokenising the data…", "正在读取数据并分词…"),
    ("before", 1, 3, '“Before” answers (the untrained model on the eval prompts): 1 / 3', "训练前的回答"),
    ("after", 2, 3, '“After” answers (the trained model on the eval prompts): 2 / 3', "训练后的回答"),
    ("saving", None, None, "Saving checkpoint-12…", "正在保存 checkpoint-12…"),
])
def test_each_phase_is_said_with_its_own_progress(phase, done, total, en, zh):
    status = {"state": "running", "phase": phase, "phase_done": done, "phase_total": total, "phase_step": 12,
              "step": 12, "total_steps": 12}
    shown, frac = phase_text(status, "en")
    assert shown == en
    assert frac == (done / total if done is not None else None)
    assert zh in phase_text(status, "zh")[0]
    html = progress_html(status, None, "en", "r1")
    assert f'data-phase="{phase}"' in html and "left" not in html  # no ETA while not training
    if frac is not None:
        assert f"width:{frac * 100:.1f}%" in html


def test_starting_says_so_and_training_shows_the_eta():
    html = progress_html({"state": "starting", "started_at": 100.0}, None, "en", "r1", now=107.0)
    assert "Starting the trainer" in html and "0:07 elapsed" in html and "left" not in html
    status = {"state": "running", "phase": "training", "started_at": 100.0, "step": 5, "total_steps": 20}
    html = progress_html(status, {"step": 5, "total_steps": 20, "eta_s": 195}, "en", "r1", now=165.0)
    assert "step 5 / 20 · 1:05 elapsed · about 3:15 left" in html and "data-phase" not in html


def test_elapsed_counts_from_start_and_goes_on_after_resume():
    # 41 s in the first attempt, then Resume: the clock goes on from 0:41, it does not restart.
    resumed = {"state": "running", "phase": "loading_model", "started_at": 1000.0, "elapsed_prior_s": 41.0}
    assert run_elapsed(resumed, now=1005.0) == 46.0
    assert "0:46 elapsed" in progress_html(resumed, {"step": 3, "elapsed_s": 20}, "en", now=1005.0)
    # a run that ended keeps the time it took, however long ago that was
    done = {"state": "stopped", "started_at": 1000.0, "updated_at": 1030.0, "elapsed_prior_s": 41.0}
    assert run_elapsed(done, now=99999.0) == 71.0


def test_a_stopped_or_finished_run_never_says_about_0_00_left():
    last = {"step": 12, "total_steps": 12, "eta_s": 0.0}
    for state in ("stopped", "finished", "failed"):
        html = progress_html({"state": state, "started_at": 0.0, "updated_at": 60.0}, last, "en")
        assert "left" not in html and "1:00 elapsed" in html, state
    assert "left" not in progress_html({"state": "stopping", "started_at": 0.0}, last, "en", now=60.0)


def test_engine_messages_are_shown_in_the_page_language():
    status = {"state": "finished", "message": "Finished 12 steps; the trained model is checkpoint-12."}
    assert "已完成 12 步；训练好的模型是 checkpoint-12。" in progress_html(status, None, "zh")
    assert "Finished 12 steps" in progress_html(status, None, "en")


def test_banner_on_every_tab_while_a_run_is_active(settings):
    values = {"train/current": "", "top/lang": "en"}
    idle = train_cb.poll(values, settings)
    assert idle["top/banner"] == "" and idle["top/banner_row"] == {"visible": False}
    assert idle["train/stop_btn"]["interactive"] is False and idle["train/force_btn"]["interactive"] is False
    _run(settings, state="running", phase="before", phase_done=0, phase_total=3, started_at=0.0)
    out = train_cb.poll(values, settings)  # a reloaded page, watching nothing yet
    assert out["top/banner_row"] == {"visible": True} and 'data-run="r1"' in out["top/banner"]
    assert '“Before” answers' in out["top/banner"]
    zh = train_cb.poll({**values, "top/lang": "zh"}, settings)["top/banner"]
    assert "有一个运行正在进行" in zh and "训练前的回答" in zh
    assert train_cb.go_to_train({}) == {"top/tabs": {"selected": "tab/train"}}


def test_runs_list_follows_the_steps(settings):
    rd = _run(settings, state="running", step=0, total_steps=12)
    values = {"train/current": str(rd.path), "train/seen": "", "train/log_scale": False, "top/lang": "en"}
    first = train_cb.poll(values, settings)
    assert first["train/runs"]["choices"][0][0] == "r1 · running · 0/12"
    rd.write_status(step=4, total_steps=12)
    rd.append_jsonl(rd.metrics_path, {"step": 4, "total_steps": 12, "loss": 1.0})
    later = train_cb.poll({**values, "train/seen": first["train/seen"]}, settings)
    assert later["train/runs"]["choices"][0][0] == "r1 · running · 4/12"
    assert "value" not in later["train/runs"]  # a pick being made in the list is not undone
    assert run_choice({"name": "r1", "state": "stopped", "run_dir": "/r"}, "zh") == ("r1 · 已停止", "/r")


@pytest.mark.slow
def test_a_real_run_reports_every_phase(tmp_path, tiny_model_dir, monkeypatch):
    """The tiny Llama trained in this process: status.json goes through each phase, with counts."""
    from tunesmith.core.config import RunConfig
    from tunesmith.core.train.launcher import run_here

    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"instruction": f"q{i}", "output": f"a{i}"} for i in range(6)]))
    cfg = RunConfig()
    cfg.model.name_or_path = str(tiny_model_dir)
    cfg.data.path, cfg.data.map_fn, cfg.data.max_length = str(data), "alpaca", 64
    cfg.method.finetuning = "lora"
    cfg.training.max_steps, cfg.training.batch_size, cfg.training.save_steps = 2, 2, 0
    cfg.training.report_to = "none"
    cfg.eval.prompts, cfg.eval.max_new_tokens = ["hi", "who?", "what?", "why?", "how?"], 4
    cfg.output.run_dir = str(tmp_path / "run")
    seen = []
    original = RunDir.write_status

    def spy(self, **fields):
        if "phase" in fields:
            seen.append((fields["phase"], fields.get("phase_done"), fields.get("phase_total")))
        return original(self, **fields)

    monkeypatch.setattr(RunDir, "write_status", spy)
    status = run_here(cfg)
    assert status["state"] == "finished", status
    phases = [p for p, _d, _t in seen]
    for name in ("loading_tokenizer", "tokenizing", "loading_model", "before", "training", "saving", "after"):
        assert name in phases, (name, seen)
    assert phases.index("before") < phases.index("training") < phases.index("saving") < phases.index("after")
    assert ("tokenizing", None, 6) in seen
    assert ("before", 5, 5) in seen and ("after", 4, 5) in seen  # two batches (4 + 1 prompts), counted
    assert status["elapsed_total_s"] > 0 and (RunDir(cfg.output.run_dir).path / "elapsed.json").is_file()
    samples = RunDir(cfg.output.run_dir).read_samples()
    assert [s["prompt"] for s in samples if s["when"] == "before"] == cfg.eval.prompts
