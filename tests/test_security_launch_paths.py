"""Who can reach the app, and which files the browser can make it touch (issue 6, Security).

tests/test_app_security.py checks the rules as functions (check_exposure, sanitize_filename,
store_upload, resolve_user_path) and that launch.py refuses a public bind without --auth. Here:

* launch.py's flags reach gradio as they should (bind address, auth, share, upload size, served folders),
  the loud warning of --insecure-no-auth, and the same rules for TUNESMITH_HOST / TUNESMITH_AUTH;
* through the callbacks, a path typed in the browser cannot leave the allowed folders by ``..``, by a
  symlink (for reading and, more important, for writing), into a hidden folder, or by naming a file
  elsewhere; an app started from ``/`` does not allow the whole disk; oversized uploads are refused.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tunesmith.core.errors import UserError


class FakeDemo:
    """Stands in for the gradio Blocks: records what launch.py asks gradio to do."""

    def __init__(self):
        self.queue_kwargs, self.launch_kwargs = None, None

    def queue(self, **kwargs):
        self.queue_kwargs = kwargs
        return self

    def launch(self, **kwargs):
        self.launch_kwargs = kwargs


@pytest.fixture
def start_app(monkeypatch, tmp_path):
    """``start_app(*flags, **env) -> (exit code, FakeDemo)``, running launch.main in this process."""
    import tunesmith.app.launch as launch
    import tunesmith.app.ui

    for name in ("TUNESMITH_HOST", "TUNESMITH_AUTH", "TUNESMITH_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))

    def run(*flags, **env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        demo = FakeDemo()
        monkeypatch.setattr(tunesmith.app.ui, "build_app", lambda settings: (demo, None))
        return launch.main([*flags, "--no-queue-worker"]), demo
    return run


def test_default_binds_loopback_without_share(start_app, tmp_path):
    code, demo = start_app()
    kw = demo.launch_kwargs
    assert code == 0 and kw["server_name"] == "127.0.0.1" and kw["share"] is False and kw["auth"] is None
    assert kw["max_file_size"] == "512mb"  # gradio refuses bigger uploads before our callback sees them
    assert kw["allowed_paths"] == [str(tmp_path / "home" / "configs")]  # the only folder gradio serves files from
    assert demo.queue_kwargs["default_concurrency_limit"] >= 8


def test_public_bind_needs_auth_and_passes_it_to_gradio(start_app, capsys):
    code, demo = start_app("--host", "0.0.0.0", "--auth", "ann:s3:cret", "--max-upload-mb", "5")
    kw = demo.launch_kwargs
    assert code == 0 and kw["server_name"] == "0.0.0.0" and kw["max_file_size"] == "5mb"
    assert _accepts(kw["auth"], "ann", "s3:cret") and not _accepts(kw["auth"], "ann", "s3")
    assert "WARNING" not in capsys.readouterr().err


def test_insecure_no_auth_serves_with_a_loud_warning(start_app, capsys):
    code, demo = start_app("--share", "--insecure-no-auth")
    err = capsys.readouterr().err
    assert code == 0 and demo.launch_kwargs["share"] is True and demo.launch_kwargs["auth"] is None
    assert "WITHOUT A PASSWORD" in err and "gradio.live" in err and err.count("!" * 78) == 2


def test_environment_variables_follow_the_same_rules(start_app, capsys):
    code, demo = start_app(TUNESMITH_HOST="0.0.0.0")
    assert code == 2 and demo.launch_kwargs is None  # refused before gradio is asked for anything
    assert "error: refusing to serve" in capsys.readouterr().err
    code, demo = start_app(TUNESMITH_HOST="0.0.0.0", TUNESMITH_AUTH="ann:pw")
    assert code == 0 and _accepts(demo.launch_kwargs["auth"], "ann", "pw")


def _accepts(auth, user, password) -> bool:
    """What gradio's /login does with an auth callable: await it when it is a coroutine function."""
    import asyncio
    import inspect

    assert callable(auth) and inspect.iscoroutinefunction(auth)  # else gradio would not await it
    return asyncio.run(auth(user, password)) is True


def _login_client(demo, host):
    """gradio's real /login route, built from exactly what launch.py handed to gradio."""
    import gradio as gr
    from gradio.routes import App
    from starlette.testclient import TestClient

    kw = demo.launch_kwargs
    blocks = gr.Blocks()
    with blocks:
        gr.Markdown("x")
    blocks.auth = kw["auth"]
    app = App.create_app(blocks, app_kwargs=dict(kw["app_kwargs"]))
    return TestClient(app, client=(host, 40000))


@pytest.mark.slow  # over 2.5 s: kept out of make test-fast
def test_login_guesses_are_slowed_then_locked_out_per_client(start_app):
    """Issue 9: --auth accepted 100 wrong guesses in 2.5 s. Now each wrong guess costs a delay, a few in a
    row lock that client out (the right password too), another client is unaffected, and the right
    password works again once the lockout ends."""
    code, demo = start_app("--host", "0.0.0.0", "--auth", "ann:pw", "--login-max-failures", "3",
                           "--login-lockout-s", "2")
    assert code == 0
    throttle = demo.launch_kwargs["auth"].__self__
    assert (throttle.max_failures, throttle.lockout_s, throttle.delay_s) == (3, 2.0, 1.0)  # the flags arrived
    throttle.delay_s = 0.2  # keeps the test short; the default is 1 s per wrong guess
    guesser, other = _login_client(demo, "10.0.0.7"), _login_client(demo, "10.0.0.8")
    t0 = time.monotonic()
    codes = [guesser.post("/login", data={"username": "ann", "password": f"guess{i}"}).status_code
             for i in range(3)]
    assert codes == [400, 400, 400] and time.monotonic() - t0 >= 3 * 0.2
    locked = guesser.post("/login", data={"username": "ann", "password": "pw"})
    assert locked.status_code == 400, "the right password must be refused during the lockout"
    assert other.post("/login", data={"username": "ann", "password": "pw"}).status_code == 200
    assert throttle.locked_for("10.0.0.7") > 0 and throttle.locked_for("10.0.0.8") == 0
    time.sleep(throttle.locked_for("10.0.0.7") + 0.1)
    ok = guesser.post("/login", data={"username": "ann", "password": "pw"})
    assert ok.status_code == 200 and ok.json() == {"success": True}


def test_many_parallel_guesses_are_all_refused_once_the_lockout_starts():
    """Guesses sent at the same moment cannot slip through together before the first failures count."""
    import asyncio

    from tunesmith.app.security import CLIENT_HOST, LoginThrottle

    throttle = LoginThrottle("ann", "pw", max_failures=5, lockout_s=60, delay_s=0.05)

    async def guesses():
        CLIENT_HOST.set("10.0.0.9")
        tries = [throttle.login("ann", f"g{i}") for i in range(99)] + [throttle.login("ann", "pw")]
        return await asyncio.gather(*tries)

    t0 = time.monotonic()
    results = asyncio.run(guesses())
    assert not any(results), "the right password, sent after 99 wrong ones, must be refused"
    assert time.monotonic() - t0 >= 0.05
    assert 59 < throttle.locked_for("10.0.0.9") <= 60 and throttle.check("ann", "pw", "10.0.0.10")


# ---- paths typed in the browser, through the callbacks ---------------------------------------------------

@pytest.fixture
def folders(tmp_path, tiny_model_dir):
    """An allowed folder (with links pointing out of it), a folder outside, and the app's settings."""
    from tunesmith.app.settings import AppSettings

    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps([{"input": "secret", "output": "data"}]))
    (outside / "run.yaml").write_text("training:\n  learning_rate: 0.0002\n")
    (outside / "model.gguf").write_bytes(b"GGUF")
    (allowed / "data.json").write_text(json.dumps([{"input": "q", "output": "a"}]))
    (allowed / "link.json").symlink_to(outside / "secret.json")
    (allowed / "linked_dir").symlink_to(outside)
    (allowed / "config_link.yaml").symlink_to(outside / "run.yaml")
    (allowed / ".hidden").mkdir()
    settings = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")},
                                    extra_roots=(str(allowed), str(tiny_model_dir)))
    settings.ensure_dirs()
    return settings, allowed, outside


def _form(settings, allowed, tiny_model_dir, **changes):
    from tunesmith.app.form import gui_default_config, values_from_config

    values = {**values_from_config(gui_default_config()), "top/lang": "en", "model.name_or_path": str(tiny_model_dir),
              "data.path": str(allowed / "data.json"), "data.map_fn": "default"}
    values.update(changes)
    return values


def _outside_snapshot(outside):
    return {p.name: p.read_bytes() for p in outside.iterdir()}


def test_reading_cannot_escape_by_dotdot_symlink_or_absolute_path(folders, tiny_model_dir):
    from tunesmith.app.callbacks import config_cb, data_cb, model_cb

    settings, allowed, outside = folders
    escapes = [str(allowed / ".." / "outside" / "secret.json"), str(allowed / "link.json"),
               str(allowed / "linked_dir" / "secret.json"), str(outside / "secret.json")]
    for path in escapes:
        # inspect_data shows the refusal in the page (the previous file's columns leave the screen)
        shown = data_cb.inspect_data({"data.path": path}, settings)
        assert "outside the folders" in shown["data/status"] and shown["data/suggest"] == ""
        assert "secret" not in str({k: v for k, v in shown.items() if k != "data/status"})
        shown = data_cb.run_preview(_form(settings, allowed, tiny_model_dir, **{"data.path": path}), settings)
        assert "outside the folders" in shown["data/status"]
        assert "secret" not in str({k: v for k, v in shown.items() if k != "data/status"})
    for path in (str(allowed / "config_link.yaml"), str(allowed / "linked_dir" / "run.yaml"), "/etc/passwd"):
        with pytest.raises(UserError, match="outside the folders"):
            config_cb.load_config({"top/config_path": path}, settings)
    for path in (str(allowed / "linked_dir" / "model.gguf"), str(allowed / ".." / "outside" / "model.gguf")):
        with pytest.raises(UserError, match="outside the folders"):
            model_cb.import_gguf({"model/gguf_path": path}, settings)
    with pytest.raises(UserError, match="outside the folders"):
        model_cb.read_facts({"model.name_or_path": str(allowed / "linked_dir")}, settings)
    # the control: the same callback reads a file that is inside
    assert "data/suggest" in data_cb.inspect_data({"data.path": str(allowed / "data.json")}, settings)


def test_writing_cannot_escape_by_symlink_dotdot_or_hidden_folder(folders, tiny_model_dir):
    from tunesmith.app.callbacks import config_cb, export_cb, train_cb

    settings, allowed, outside = folders
    before = _outside_snapshot(outside)
    form = _form(settings, allowed, tiny_model_dir)
    for target in (allowed / "config_link.yaml", allowed / "linked_dir" / "new.yaml",
                   allowed / ".." / "outside" / "new.yaml", allowed / ".hidden" / "new.yaml"):
        with pytest.raises(UserError, match="outside the folders"):
            config_cb.save_config({**form, "top/config_path": str(target)}, settings)
    for run_dir in (allowed / "linked_dir" / "run", allowed / ".hidden" / "run", outside / "run"):
        out = train_cb.start({**form, "output.run_dir": str(run_dir)}, settings)
        assert "outside the folders" in out["train/status"], out
    run = settings.runs_root / "r"
    (run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    for out_dir in (allowed / "linked_dir" / "export", allowed / ".." / "outside" / "export"):
        with pytest.raises(UserError, match="outside the folders"):
            list(export_cb.export({"export/run": str(run), "export/mode": "convert", "export/out_dir": str(out_dir),
                                   "top/lang": "en"}, settings))
    assert _outside_snapshot(outside) == before, "something was written outside the allowed folders"
    saved = config_cb.save_config({**form, "top/config_path": str(allowed / "mine.yaml")}, settings)
    assert (allowed / "mine.yaml").is_file() and "ts-ok" in saved["top/status"]  # the control


def test_checkpoint_names_from_the_browser_cannot_leave_the_run(folders, tiny_model_dir):
    from tunesmith.app.callbacks import chat_cb

    settings, allowed, outside = folders
    run = settings.runs_root / "r"
    (run / "checkpoints").mkdir(parents=True)
    values = {"chat/source": "run", "chat/run": str(run), "chat/max_new_tokens": 8, "chat/temperature": 0.1,
              "chat/top_p": 0.75, "chat/top_k": 40, "chat/repetition_penalty": 1.0, "top/lang": "en"}
    for name in ("../../../outside", "../checkpoints/../../r", str(outside)):
        with pytest.raises(UserError, match="not in"):
            list(chat_cb.load({**values, "chat/checkpoint": name}, settings))


def test_uploads_land_in_the_uploads_folder_and_big_configs_are_refused(folders, tmp_path):
    from tunesmith.app.callbacks import config_cb, data_cb

    settings, allowed, outside = folders
    gradio_tmp = tmp_path / "gradio-tmp"
    gradio_tmp.mkdir()
    sneaky = gradio_tmp / "..secret .json"
    sneaky.write_text(json.dumps([{"input": "q", "output": "a"}]))
    out = data_cb.upload({"data/upload": str(sneaky), "top/lang": "en"}, settings)
    stored = settings.uploads_dir / "secret.json"
    assert out["data.path"] == str(stored) and stored.read_text() == sneaky.read_text()
    big = gradio_tmp / "run.yaml"
    big.write_text("# padding\n" * 120_000)
    with pytest.raises(UserError, match="larger than 1 MB"):
        config_cb.load_uploaded_config({"top/upload_cfg": str(big)}, settings)
    assert sorted(p.name for p in settings.uploads_dir.iterdir()) == ["secret.json"]


def test_an_app_started_from_the_root_folder_does_not_allow_the_whole_disk(folders, monkeypatch):
    from tunesmith.app.security import resolve_user_path

    settings, allowed, outside = folders
    monkeypatch.chdir("/")
    roots = settings.allowed_roots()
    assert os.path.abspath("/") not in map(str, roots)
    with pytest.raises(UserError, match="outside the folders"):
        resolve_user_path("/etc/passwd", roots)
    assert resolve_user_path(str(allowed / "data.json"), roots) == allowed / "data.json"


# ---- issue 9: one check of a config on every road to a launch ---------------------------------------------

@pytest.fixture
def recorded_launches(monkeypatch):
    """launcher.launch replaced by a recorder: nothing trains, but what would have launched is kept."""
    import tunesmith.core.train.launcher as launcher
    from tunesmith.core.train.rundir import RunDir

    calls = []

    class Handle:
        def __init__(self, run_dir):
            self.rd = RunDir(run_dir)
            self.run_dir = self.rd.path

    def fake_launch(cfg, run_dir=None, *, checked=False):
        calls.append((cfg, run_dir))
        return Handle(run_dir)

    monkeypatch.setattr(launcher, "launch", fake_launch)
    return calls


def _stopped_run(settings, tiny_model_dir, allowed):
    """A run of the app's with a checkpoint, as Resume finds it."""
    from tunesmith.app.form import gui_default_config
    from tunesmith.core.train.rundir import RunDir

    rd = RunDir(settings.runs_root / "r1")
    cfg = gui_default_config()
    cfg.model.name_or_path, cfg.data.path = str(tiny_model_dir), str(allowed / "data.json")
    cfg.output.run_dir = str(rd.path)
    cfg.save(rd.config_path)
    rd.write_status(state="stopped", step=1)
    (rd.checkpoints_dir / "checkpoint-1").mkdir(parents=True)
    (rd.checkpoints_dir / "checkpoint-1" / "trainer_state.json").write_text("{}")
    return rd


def test_save_config_then_resume_cannot_launch_paths_outside_the_allowed_folders(folders, tiny_model_dir,
                                                                                recorded_launches):
    """Issue 9: Save config wrote the unchecked form into an existing run's config.yaml (a run config counted as
    overwritable) and Resume launched it unchecked: a run trained on data and a model outside every allowed folder."""
    from tunesmith.app.callbacks import config_cb, train_cb
    from tunesmith.core.config import RunConfig

    settings, allowed, outside = folders
    rd = _stopped_run(settings, tiny_model_dir, allowed)
    before = rd.config_path.read_bytes()
    evil = _form(settings, allowed, tiny_model_dir, **{"data.path": str(outside / "secret.json"),
                                                       "model.name_or_path": str(outside)})
    for target in (rd.config_path, rd.path / "other.yaml", rd.checkpoints_dir / "checkpoint-1" / "config.yaml",
                   settings.runs_root / "new-run" / "config.yaml"):
        with pytest.raises(UserError, match="never writes into a run"):
            config_cb.save_config({**evil, "top/config_path": str(target)}, settings)
    assert rd.config_path.read_bytes() == before and not (settings.runs_root / "new-run").exists()

    # config.yaml changed by any other means: Resume checks it as Start checks the form
    cfg = RunConfig.load(rd.config_path)
    cfg.data.path = str(outside / "secret.json")
    cfg.save(rd.config_path)
    with pytest.raises(UserError, match="outside the folders"):
        train_cb.resume({"train/current": str(rd.path), "top/lang": "en"}, settings)
    cfg.data.path, cfg.model.name_or_path = str(allowed / "data.json"), str(outside)
    cfg.save(rd.config_path)
    with pytest.raises(UserError, match="outside the folders"):
        train_cb.resume({"train/current": str(rd.path), "top/lang": "en"}, settings)
    assert recorded_launches == []
    # the control: a clean config resumes
    cfg.model.name_or_path = str(tiny_model_dir)
    cfg.save(rd.config_path)
    train_cb.resume({"train/current": str(rd.path), "top/lang": "en"}, settings)
    (launched_cfg, run_dir), = recorded_launches
    assert run_dir == rd.path and launched_cfg.training.resume_from == "latest"


@pytest.mark.parametrize("field,value", [
    ("data.path", "{outside}/secret.json"),
    ("model.name_or_path", "{outside}"),
    ("distributed.deepspeed", "{outside}/ds.json"),
    ("training.resume_from", "{outside}/checkpoint-1"),
    ("output.run_dir", "{allowed}/not-in-the-runs-root"),
])
def test_every_road_to_a_launch_takes_the_same_config_check(folders, tiny_model_dir, recorded_launches, field, value):
    """Start (the form), Load config (a YAML path), an uploaded YAML, and a queued run starting later all
    refuse the same config, whichever path field is outside the allowed folders / the runs list."""
    from tunesmith.app import run_queue
    from tunesmith.app.callbacks import config_cb, train_cb
    from tunesmith.app.form import config_from_values
    from tunesmith.core.train.rundir import RunDir

    settings, allowed, outside = folders
    (outside / "ds.json").write_text("{}")
    (outside / "checkpoint-1").mkdir()
    bad = value.format(outside=outside, allowed=allowed)
    form = _form(settings, allowed, tiny_model_dir, **{field: bad})
    message = "not a run of this app" if field == "output.run_dir" else "outside the folders"
    assert message in train_cb.start(form, settings)["train/status"]
    cfg = config_from_values(form)
    cfg.save(allowed / "bad.yaml")
    with pytest.raises(UserError, match=message):
        config_cb.load_config({"top/config_path": str(allowed / "bad.yaml"), "top/lang": "en"}, settings)
    with pytest.raises(UserError, match=message):
        config_cb.load_uploaded_config({"top/upload_cfg": str(allowed / "bad.yaml"), "top/lang": "en"}, settings)
    assert recorded_launches == []
    if field == "output.run_dir":
        return  # a queued run always starts in its own folder, whatever its config says
    queued = RunDir(settings.runs_root / "q1")
    cfg.save(queued.config_path)
    queued.mark_queued()
    assert run_queue.tick(settings) is None
    status = queued.read_status()
    assert status["state"] == "failed" and message in status["message"]
    assert recorded_launches == []


def test_the_app_launches_only_where_the_config_check_runs_first():
    """The class, not the instance: app/ calls core's launch() in exactly two functions (train_cb._launch for
    Start/Resume, run_queue.tick for queued runs), and each passes its config through check_config first."""
    import ast
    from pathlib import Path

    app_dir = Path(__file__).resolve().parent.parent / "tunesmith" / "app"
    callers = {}
    for path in app_dir.rglob("*.py"):
        if path.name == "launch.py":  # the studio's start-up: its only launch() is gradio's Blocks.launch
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            calls = sorted((n for n in ast.walk(fn) if isinstance(n, ast.Call)),
                           key=lambda c: (c.lineno, c.col_offset))
            names = [c.func.id if isinstance(c.func, ast.Name) else getattr(c.func, "attr", "") for c in calls]
            if any(n in ("launch", "run_here") for n in names):
                callers[f"{path.relative_to(app_dir)}::{fn.name}"] = names
    assert sorted(callers) == ["callbacks/train_cb.py::_launch", "run_queue.py::tick"], callers
    for names in callers.values():
        assert names.index("check_config") < names.index("launch")
