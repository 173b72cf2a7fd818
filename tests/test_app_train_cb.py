"""Train tab callbacks: Start validates and launches (never trains in-process), a busy GPU asks to
stop or queue, the queue starts runs one at a time, and polling a run folder fills the tab."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tunesmith.app import run_queue
from tunesmith.app.callbacks import train_cb
from tunesmith.app.form import gui_default_config, values_from_config
from tunesmith.app.settings import AppSettings
from tunesmith.core.errors import UserError
from tunesmith.core.train.rundir import RunDir


@pytest.fixture
def settings(tmp_path):
    s = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")})
    s.ensure_dirs()
    return s


@pytest.fixture
def data_file(settings):
    path = settings.uploads_dir / "d.json"
    path.write_text(json.dumps([{"input": "hi", "output": "hello"}]))
    return path


@pytest.fixture
def launched(monkeypatch):
    """Record launches instead of starting trainers: (cfg, run_dir) pairs."""
    calls = []

    class FakeHandle:
        def __init__(self, run_dir):
            self.rd = RunDir(run_dir)
            self.run_dir = self.rd.path

    def fake_launch(cfg, run_dir=None, *, checked=False):
        calls.append((cfg, run_dir))
        rd = RunDir(run_dir)
        cfg.save(rd.config_path)
        rd.write_status(state="running", pid=os.getpid(), pgid=None, step=0)
        return FakeHandle(run_dir)

    import tunesmith.core.train.launcher as launcher

    monkeypatch.setattr(launcher, "launch", fake_launch)
    return calls


def _values(data_file, **changes):
    v = {**values_from_config(gui_default_config()), "top/lang": "en", "data.path": str(data_file),
         "data.map_fn": "default", "model.name_or_path": "embedded:SmolLM2-135M-Instruct"}
    v.update(changes)
    return v


def test_start_shows_every_problem_and_launches_nothing(settings, data_file, launched):
    out = train_cb.start(_values(data_file, **{"training.batch_size": 0, "lora.r": 0, "training.warmup_ratio": 2}),
                         settings)
    for name in ("training.batch_size", "lora.r", "training.warmup_ratio"):
        assert name in out["train/status"]
    assert launched == []


def test_start_launches_the_form_config_in_a_new_run_folder(settings, data_file, launched):
    out = train_cb.start(_values(data_file, **{"output.name": "my run!", "training.learning_rate": 1e-4}), settings)
    assert len(launched) == 1
    cfg, run_dir = launched[0]
    assert cfg.training.learning_rate == 1e-4 and cfg.data.path == str(data_file)
    assert run_dir.parent == settings.runs_root and run_dir.name.startswith("my_run-")
    assert out["train/current"] == str(RunDir(run_dir).path) and "Started run" in out["train/status"]
    assert out["train/cmd"] == f"python -m tunesmith train {run_dir}/config.yaml --work-dir {run_dir}"


def test_paths_outside_the_allowed_folders_are_refused(settings, data_file, launched):
    out = train_cb.start(_values(data_file, **{"data.path": "/etc/passwd"}), settings)
    assert "outside the folders" in out["train/status"] and launched == []
    out = train_cb.start(_values(data_file, **{"output.run_dir": "/etc/evil"}), settings)
    assert "outside the folders" in out["train/status"] and launched == []


def test_second_start_while_busy_asks_then_queues(settings, data_file, launched, monkeypatch):
    train_cb.start(_values(data_file), settings)
    first = launched[0][1]
    monkeypatch.setattr(run_queue, "active_runs", lambda root: [{"name": first.name, "run_dir": str(first)}])
    monkeypatch.setattr(train_cb, "active_runs", run_queue.active_runs)
    out = train_cb.start(_values(data_file), settings)
    assert out["train/confirm"] == {"visible": True} and len(launched) == 1

    out = train_cb.queue(_values(data_file, **{"output.name": "second"}), settings)
    queued = run_queue.queued_runs(settings.runs_root)
    assert len(queued) == 1 and queued[0].name.startswith("second-") and out["train/current"] == str(queued[0])
    assert RunDir(queued[0]).read_status()["state"] == "queued"
    assert run_queue.tick(settings) is None  # still busy: nothing starts

    monkeypatch.setattr(run_queue, "active_runs", lambda root: [])
    assert run_queue.tick(settings) == queued[0]
    assert launched[-1][1] == queued[0] and run_queue.queued_runs(settings.runs_root) == []


def test_stop_on_a_queued_run_removes_it(settings, data_file, launched, monkeypatch):
    monkeypatch.setattr(train_cb, "active_runs", lambda root: [{"name": "x", "run_dir": "/x"}])
    out = train_cb.queue(_values(data_file), settings)
    train_cb.stop({"train/current": out["train/current"], "top/lang": "en"}, settings)
    assert RunDir(out["train/current"]).read_status()["state"] == "stopped"
    assert run_queue.queued_runs(settings.runs_root) == []


def _fake_run(settings, state="running", **status):
    rd = RunDir(settings.runs_root / "r1")
    gui_default_config().save(rd.config_path)
    rd.write_status(state=state, pid=os.getpid(), **status)
    with open(rd.metrics_path, "w") as fh:
        for step in range(1, 6):
            fh.write(json.dumps({"step": step, "total_steps": 10, "loss": 3.0 - 0.2 * step, "learning_rate": 1e-4,
                                 "grad_norm": 1.0, "tokens_per_s": 50.0, "peak_mem_mb": 600, "elapsed_s": step,
                                 "eta_s": 10 - step}) + "\n")
        fh.write('{"step": 6, "loss": 1.')  # a line being written right now
    rd.samples_path.write_text(json.dumps({"step": 5, "prompt": "Who are you?", "answer": "I am a bot."}) + "\n")
    rd.log_path.write_text("loading\nstep 5\n")
    return rd


def test_poll_fills_progress_plots_log_and_samples(settings):
    rd = _fake_run(settings)
    values = {"train/current": str(rd.path), "train/seen": "", "train/log_scale": False, "top/lang": "en"}
    out = train_cb.poll(values, settings)
    assert 'data-frac="0.5000"' in out["train/progress"] and "step 5 / 10" in out["train/progress"]
    assert out["train/plot_loss"]["value"]["value"].round(3).tolist() == [2.8, 2.6, 2.4, 2.2, 2.0]
    assert out["train/plot_loss"]["colors_in_legend"] == []  # one series: no legend to read "series"
    assert 'data-points="5"' in out["train/points"]
    assert out["train/runs"]["value"] == str(rd.path)  # the list is relabelled when the state changes
    assert "I am a bot." in out["train/samples"] and out["train/log"].endswith("step 5</pre></div>")
    assert out["train/failure"] == ""
    again = train_cb.poll({**values, "train/seen": out["train/seen"]}, settings)
    assert "train/plot_loss" not in again  # nothing new: plots are not re-sent
    assert set(train_cb.poll({**values, "train/current": ""}, settings)) == {*train_cb.BANNER_IDS,
                                                                             *train_cb.STOP_IDS}


def test_stop_buttons_are_live_only_while_the_watched_run_is(settings):
    # they were bright red and clickable with nothing running
    live = {"interactive": True, "variant": "stop"}
    idle = {"interactive": False, "variant": "secondary"}
    rd = _fake_run(settings)
    values = {"train/current": str(rd.path), "train/seen": "", "top/lang": "en"}
    out = train_cb.poll(values, settings)
    assert [out[b] for b in train_cb.STOP_IDS] == [live, live]
    assert [train_cb.on_load({"train/current": "", "top/lang": "en"}, settings)[b]
            for b in train_cb.STOP_IDS] == [live, live]  # a reload re-attaches with Stop usable at once
    nothing = train_cb.poll({**values, "train/current": ""}, settings)
    assert [nothing[b] for b in train_cb.STOP_IDS] == [idle, idle]
    rd.write_status(state="failed", error="boom")
    out = train_cb.poll(values, settings)
    assert [out[b] for b in train_cb.STOP_IDS] == [idle, idle]


def test_plot_update_never_sends_an_empty_frame():
    import pandas as pd

    empty = pd.DataFrame(columns=["step", "value", "series"])
    assert train_cb.plot_update(empty, "loss") == {"value": None, "y_title": "loss"}
    frame = pd.DataFrame({"step": [1, 2], "value": [1.0, 2.0], "series": ["loss", "eval loss"]})
    assert train_cb.plot_update(frame, "loss")["colors_in_legend"] == ["eval loss", "loss"]


def test_poll_of_a_failed_run_explains_it(settings):
    rd = _fake_run(settings, state="failed", error="Out of memory while training.",
                   advice="Switch to QLoRA.", log=["RuntimeError: CUDA out of memory"])
    out = train_cb.poll({"train/current": str(rd.path), "top/lang": "en"}, settings)
    assert "Out of memory while training." in out["train/failure"] and "Switch to QLoRA." in out["train/failure"]
    assert "CUDA out of memory" in out["train/failure"]


def test_reload_reattaches_to_a_live_run(settings):
    rd = _fake_run(settings)
    out = train_cb.on_load({"train/current": "", "top/lang": "en"}, settings)
    assert out["train/current"] == str(rd.path) and out["train/runs"]["value"] == str(rd.path)
    assert out["model.name_or_path"] == gui_default_config().model.name_or_path  # the run's form is shown
    assert out["output.run_dir"] == ""
    assert out["train/cmd"] == f"python -m tunesmith train {rd.path / 'config.yaml'} --work-dir {rd.path}"
    assert train_cb.open_run({"train/runs": str(rd.path), "top/lang": "en"}, settings)["train/cmd"] == out["train/cmd"]
    # a finished run is listed but not re-attached automatically
    rd.write_status(state="finished")
    out = train_cb.on_load({"train/current": "", "top/lang": "en"}, settings)
    assert "train/current" not in out and out["train/runs"]["choices"][0][1] == str(rd.path)


def test_resume_needs_a_checkpoint(settings, launched):
    rd = _fake_run(settings, state="stopped")
    with pytest.raises(Exception, match="no checkpoint"):
        train_cb.resume({"train/current": str(rd.path), "top/lang": "en"}, settings)
    ckpt = rd.checkpoints_dir / "checkpoint-5"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    out = train_cb.resume({"train/current": str(rd.path), "top/lang": "en"}, settings)
    cfg, run_dir = launched[-1]
    assert cfg.training.resume_from == "latest" and RunDir(run_dir).path == rd.path
    assert out["train/current"] == str(rd.path)


def test_plan_run_dir_is_unique(settings):
    cfg = gui_default_config()
    cfg.output.name = "same"
    first = train_cb.plan_run_dir(cfg, settings)
    first.mkdir(parents=True)
    assert train_cb.plan_run_dir(cfg, settings) != first
    time.sleep(0)


# ---- issue 9: Stop, Force stop and the runs list ---------------------------------------------------------

def _stand_in(run_dir):
    """A run as launch() starts one (the supervisor leading its own session), with a trainer that never stops."""
    import subprocess
    import sys

    import psutil

    from tunesmith.core.paths import SOURCE_ROOT, child_env

    rd = RunDir(run_dir)
    fd = rd.acquire_lock()
    try:
        rd.write_status(state="running", message="Training.")
        cmd = [sys.executable, "-m", "tunesmith.core.train.supervise", str(rd.path), "--", sys.executable, "-c",
               "import time; print('trainer up', flush=True); time.sleep(120)"]
        with open(rd.log_path, "ab") as log:
            popen = subprocess.Popen(cmd, cwd=str(SOURCE_ROOT), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, pass_fds=(fd,),
                                     env=child_env())
    finally:
        os.close(fd)
    rd.write_status(pid=popen.pid, pgid=popen.pid, pid_create_time=psutil.Process(popen.pid).create_time())
    deadline = time.monotonic() + 20
    while "trainer up" not in rd.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return popen


def test_stop_twice_keeps_the_run_and_force_stop_is_its_own_button(settings):
    """Issue 9: a double-click on Stop killed the run at once (everything since the last checkpoint lost)."""
    popen = _stand_in(settings.runs_root / "r1")
    values = {"train/current": str(settings.runs_root / "r1"), "top/lang": "en"}
    try:
        assert "Stop requested" in train_cb.stop(values, settings)["train/status"]
        again = train_cb.stop(values, settings)
        assert "already requested" in again["train/status"] and "Force stop" in again["train/status"]
        time.sleep(0.5)
        assert popen.poll() is None and RunDir(settings.runs_root / "r1").read_status()["state"] == "stopping"
        zh = train_cb.stop({**values, "top/lang": "zh"}, settings)["train/status"]
        assert "已经请求过停止" in zh and "强制停止" in zh
        out = train_cb.force_stop(values, settings)
        assert "Force-stopped" in out["train/status"] and out["train/cmd"].endswith("--force")
        assert popen.wait(timeout=10) is not None
        assert RunDir(settings.runs_root / "r1").read_status()["state"] == "stopped"
        assert "not running" in train_cb.stop(values, settings)["train/status"]
    finally:
        if popen.poll() is None:
            popen.kill()


def test_the_uploads_folder_and_other_allowed_folders_are_never_runs(tmp_path, bystander):
    """Issue 9: an upload named status.json made uploads/ look like a run, the hidden current-run box accepted any
    allowed folder, and Stop twice SIGKILLed the pgid written in that file (the tester's sleep died with -9)."""
    import psutil

    from tunesmith.app.callbacks import data_cb

    home = tmp_path / "home"
    # the runs root is the app's folder itself, so uploads/ is one of its children
    s = AppSettings.from_env({"TUNESMITH_HOME": str(home)}, runs_root=str(home), extra_roots=(str(tmp_path / "mine"),))
    s.ensure_dirs()
    forged = json.dumps({"state": "running", "pid": bystander.pid, "pgid": bystander.pid,
                         "pid_create_time": psutil.Process(bystander.pid).create_time()})
    src = tmp_path / "gradio-tmp" / "status.json"
    src.parent.mkdir()
    src.write_text(forged)
    out = data_cb.upload({"data/upload": str(src), "top/lang": "en"}, s)
    assert out["data.path"] == str(s.uploads_dir / "upload-status.json")
    # even with the file put there by other means, and in an allowed folder of the user's
    (s.uploads_dir / "status.json").write_text(forged)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "status.json").write_text(forged)
    for folder in (s.uploads_dir, tmp_path / "mine", tmp_path / "mine" / ".." / "home" / "uploads"):
        values = {"train/current": str(folder), "train/runs": str(folder), "top/lang": "en"}
        for action in (train_cb.stop, train_cb.stop, train_cb.force_stop, train_cb.resume, train_cb.poll,
                       train_cb.open_run):
            with pytest.raises(UserError, match="not a run of this app|outside the folders"):
                action(values, s)
    assert bystander.poll() is None  # alive: nothing was signalled
    assert json.loads((s.uploads_dir / "status.json").read_text()) == json.loads(forged)  # nor rewritten
    assert all(Path(r[1]) != s.uploads_dir for r in train_cb.refresh_runs({}, s)["train/runs"]["choices"])
    assert "train/current" not in train_cb.on_load({"train/current": "", "top/lang": "en"}, s)
    assert train_cb._busy(s) == []  # nor does it make the GPUs look busy


def test_a_real_run_in_the_runs_list_passes_the_same_check(settings):
    rd = _fake_run(settings)
    assert train_cb.open_run({"train/runs": str(rd.path), "top/lang": "en"}, settings)["train/current"] == str(rd.path)
    (settings.uploads_dir / "status.json").write_text('{"state": "running"}')
    link = settings.runs_root / "link"  # a child of the runs root that leads elsewhere
    link.symlink_to(settings.uploads_dir)
    with pytest.raises(UserError, match="not a run of this app"):
        train_cb.poll({"train/current": str(link), "top/lang": "en"}, settings)


def test_start_uses_the_run_folder_the_preview_showed(settings, data_file, launched, monkeypatch):
    # Preview said …193920, Start (planning again from the clock) made …193923
    clock = iter(["20261201-193920", "20261201-193923", "20261201-193925"])
    monkeypatch.setattr(train_cb.time, "strftime", lambda fmt: next(clock))
    values = _values(data_file, **{"output.name": "same"})
    shown = train_cb.preview_command(values, settings)
    planned = shown["train/planned"]
    assert planned == str(settings.runs_root / "same-20261201-193920") and planned in shown["train/cmd"]
    out = train_cb.start({**values, "train/planned": planned}, settings)
    assert str(launched[0][1]) == planned and out["train/planned"] == ""
    # a planned folder that another run took meanwhile, or a renamed run, gets a fresh folder
    cfg = gui_default_config()
    cfg.output.name = "same"
    (settings.runs_root / "same-20261201-193920").mkdir(parents=True, exist_ok=True)
    assert train_cb.planned_run_dir({"train/planned": planned}, cfg, settings) is None
    cfg.output.name = "other"
    assert train_cb.planned_run_dir({"train/planned": str(settings.runs_root / "same-x")}, cfg, settings) is None
    cfg.output.name = "same"
    assert train_cb.planned_run_dir({"train/planned": "/tmp/same-x"}, cfg, settings) is None
    assert train_cb.planned_run_dir({"train/planned": str(settings.runs_root / "same-x")}, cfg, settings) == \
        settings.runs_root / "same-x"
