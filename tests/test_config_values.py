"""Issue 9: values that used to pass validation and then crash the trainer (or were taken silently).

Each is given to the CLI (`train ... --print-command` and a real `train`) and must be refused before
anything launches: exit code 2, one `error:` line naming the field and the fix, and the user's files
(and the run folder) untouched. Suspicious-but-possible values give a `warning:` line and are returned
by tunesmith.core.preflight.warnings(), which the GUI's validation shows.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from tunesmith.core import preflight
from tunesmith.core.cli import main
from tunesmith.core.config import RunConfig
from tunesmith.core.errors import ConfigError
from tunesmith.core.paths import SOURCE_ROOT


@pytest.fixture
def user(tmp_path):
    """A model folder that passes the path checks (no weights needed: nothing may get as far as loading),
    a 4-row dataset and a config using them."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "four.jsonl"
    data.write_text("".join(json.dumps({"input": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(4)))
    cfg = RunConfig()
    cfg.model.name_or_path, cfg.data.path, cfg.data.map_fn = str(model), str(data), "default"
    cfg.method.finetuning, cfg.training.max_steps = "lora", 2
    cfg.save(tmp_path / "good.yaml")
    return tmp_path


def digest(folder) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def train(capsys, *argv) -> tuple[int, list[str], str]:
    code = main(["train", *map(str, argv)])
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.startswith("error:")], captured.err


def assert_refused(capsys, user, argv, needles, *, work=None):
    work = work or user / "work"
    before = digest(user)
    for extra in (["--print-command"], []):  # printing the command, and a real start
        code, errors, err = train(capsys, *argv, "--work-dir", work, *extra)
        assert code == 2, (extra, err)
        assert len(errors) == 1 and "Traceback" not in err, err
        for needle in (*needles, "Fix:"):
            assert needle in errors[0], (needle, errors[0])
    assert digest(user) == before  # the run folder was never made, no file was touched
    assert not (user / "work").exists()


@pytest.mark.parametrize("yaml_text, field", [
    ("training:\n  num_epochs: .inf\n", "training.num_epochs"),
    ("training:\n  learning_rate: .nan\n", "training.learning_rate"),
    ("data:\n  eval_size: -.inf\n", "data.eval_size"),
    ("training:\n  warmup_ratio: 'inf'\n", "training.warmup_ratio"),
])
def test_non_finite_numbers_are_refused_naming_the_field(capsys, user, yaml_text, field):
    cfg = RunConfig.load(user / "good.yaml").to_dict()
    section, name = field.split(".")
    cfg[section][name] = __import__("yaml").safe_load(yaml_text)[section][name]
    (user / "bad.yaml").write_text(__import__("yaml").safe_dump(cfg))
    assert_refused(capsys, user, [user / "bad.yaml"], (field, "must be a finite number"))


def test_non_finite_values_set_in_code_are_refused_too():
    cfg = RunConfig()
    cfg.training.num_epochs = float("inf")
    cfg.lora.dropout = float("nan")
    problems = preflight.problems(cfg, check_paths=False, check_env=False)
    assert {p.field for p in problems} == {"training.num_epochs", "lora.dropout"}
    assert all("finite" in p.message and p.fix for p in problems)
    assert preflight.warnings(cfg, check_paths=False, check_env=False) == []


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_outside_numpys_range_is_refused(capsys, user, seed):
    assert_refused(capsys, user, [user / "good.yaml", "--seed", seed], ("training.seed", f"got {seed}", "from 0 to"))


def test_an_absurd_batch_size_is_refused_with_the_upper_bound(capsys, user):
    assert_refused(capsys, user, [user / "good.yaml", "--set", "training.batch_size=1000000000000"],
                   ("training.batch_size", "at most 4096"))
    assert_refused(capsys, user, [user / "good.yaml", "--set", "training.gradient_accumulation=99999999"],
                   ("training.gradient_accumulation", "at most"))
    cfg = RunConfig.load(user / "good.yaml")
    cfg.training.batch_size = cfg.training.gradient_accumulation = 4096
    assert not preflight.problems(cfg, check_env=False)


@pytest.mark.parametrize("content, needles", [
    ({"zero_optimization": {"stage": 7}}, ("zero_optimization.stage is 7", "0, 1, 2 and 3")),
    ({"zero_optimization": {"stage": "two"}}, ("zero_optimization.stage is \"two\"",)),
    ({"zero_optimization": [2]}, ("zero_optimization must be a JSON object",)),
    ({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "gpu"}}}, ("device none, cpu or nvme",)),
    ({"bf16": True}, ("bf16 must be a JSON object",)),
    ([1, 2], ("must hold a JSON object",)),
])
def test_a_deepspeed_json_deepspeed_would_refuse_is_refused_before_launch(capsys, user, content, needles):
    (user / "ds.json").write_text(json.dumps(content))
    assert_refused(capsys, user, [user / "good.yaml", "--deepspeed", user / "ds.json"],
                   ("distributed.deepspeed", *needles))


def test_the_deepspeed_json_check_imports_neither_deepspeed_nor_torch(user):
    (user / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 7}}))
    code = ("import sys; from tunesmith.core import preflight; from tunesmith.core.config import RunConfig; "
            "cfg = RunConfig.load(sys.argv[1]); cfg.distributed.deepspeed = sys.argv[2]; "
            "print([p.field for p in preflight.problems(cfg, check_env=False)]); "
            "print(sorted(m for m in ('torch', 'deepspeed', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(user / "good.yaml"), str(user / "ds.json")], cwd=SOURCE_ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["['distributed.deepspeed']", "[]"]
    assert preflight.problems(RunConfig.load(user / "good.yaml").with_overrides(
        ["distributed.deepspeed=zero2"]), check_env=False) == []  # the presets pass


def test_a_run_folder_that_is_a_file_is_refused_and_the_file_kept(capsys, user):
    (user / "notes.txt").write_text("my notes")
    for work in (user / "notes.txt", user / "notes.txt" / "run"):
        assert_refused(capsys, user, [user / "good.yaml"], ("output.run_dir", "is a file"), work=work)
    assert (user / "notes.txt").read_text() == "my notes"


def test_the_launcher_refuses_a_run_folder_that_is_a_file(user):
    """The GUI and the queue call launch() with a run folder of their own, past RunConfig's checks."""
    from tunesmith.core.train.launcher import launch, prepare_run, run_here

    (user / "notes.txt").write_text("my notes")
    cfg = RunConfig.load(user / "good.yaml")
    for call in (launch, run_here, prepare_run):
        with pytest.raises(ConfigError) as err:
            call(cfg, user / "notes.txt")
        assert err.value.field == "output.run_dir" and "is a file" in err.value.message and err.value.fix
    assert (user / "notes.txt").read_text() == "my notes"


def test_an_eval_split_too_small_or_too_big_for_the_data(capsys, user):
    # 2 of 4 rows: allowed, but the CLI warns (and still prints the command)
    code = main(["train", str(user / "good.yaml"), "--work-dir", str(user / "work"), "--set", "data.eval_size=2",
                 "--print-command"])
    err = capsys.readouterr().err
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "data.eval_size" in warnings[0] and "2 row(s)" in warnings[0], err
    assert "Fix:" in warnings[0]
    cfg = RunConfig.load(user / "good.yaml").with_overrides(["data.eval_size=2"])
    assert preflight.problems(cfg, check_env=False) == [] and len(preflight.warnings(cfg, check_env=False)) == 1
    # a fraction that leaves only 1 row to train on
    cfg = RunConfig.load(user / "good.yaml").with_overrides(["data.eval_size=0.75"])
    assert [w.split(":")[0] for w in preflight.warnings(cfg, check_env=False)] == ["data.eval_size"]
    # every row held out, or a fraction that rounds to none: refused before the trainer finds it
    assert_refused(capsys, user, [user / "good.yaml", "--set", "data.eval_size=4"],
                   ("data.eval_size", "4 evaluation row(s) out of 4", "nothing to train on"))
    assert_refused(capsys, user, [user / "good.yaml", "--set", "data.eval_size=0.01"],
                   ("data.eval_size", "0 evaluation row(s) out of 4"))
    # a healthy split says nothing
    big = user / "big.jsonl"
    big.write_text("".join(json.dumps({"input": f"q{i}", "output": "a"}) + "\n" for i in range(400)))
    assert preflight.warnings(RunConfig.load(user / "good.yaml").with_overrides(
        [f"data.path={big}", "data.eval_size=0.05"]), check_env=False) == []


def test_more_processes_than_cpu_cores_without_a_gpu_warns(capsys, user, monkeypatch):
    monkeypatch.setattr(preflight, "_cuda_count", lambda: 0)
    monkeypatch.setattr(preflight, "_cpu_cores", lambda: 2)
    code = main(["train", str(user / "good.yaml"), "--work-dir", str(user / "work"), "--nproc-per-node", "4",
                 "--print-command"])
    err = capsys.readouterr().err
    assert code == 0
    assert "warning: distributed.nproc_per_node: 4 processes on a machine with 2 CPU core(s) and no GPU" in err, err
    assert "Fix: Set distributed.nproc_per_node to 2 or less." in err
    cfg = RunConfig.load(user / "good.yaml").with_overrides(["distributed.nproc_per_node=2"])
    assert preflight.warnings(cfg) == []
    monkeypatch.setattr(preflight, "_cuda_count", lambda: 4)  # GPUs: one process per GPU is the norm
    assert preflight.warnings(RunConfig.load(user / "good.yaml").with_overrides(["distributed.nproc_per_node=4"])) == []


def test_the_gui_shows_the_warnings_when_it_checks_the_form(user, monkeypatch):
    from tunesmith.app.callbacks import train_cb
    from tunesmith.app.form import gui_default_config, values_from_config
    from tunesmith.app.settings import AppSettings

    monkeypatch.setattr(preflight, "_cuda_count", lambda: 0)
    monkeypatch.setattr(preflight, "_cpu_cores", lambda: 2)
    settings = AppSettings.from_env({"TUNESMITH_HOME": str(user / "home")}, extra_roots=(str(user),))
    settings.ensure_dirs()
    values = {**values_from_config(gui_default_config()), "top/lang": "en", "model.name_or_path": str(user / "model"),
              "data.path": str(user / "four.jsonl"), "data.map_fn": "default", "method.finetuning": "lora",
              "training.max_steps": 2, "data.eval_size": 2, "distributed.nproc_per_node": 4}
    shown = (train_cb.preview_command(values, settings)[train_cb.STATUS],)
    for html in shown:
        assert "ts-error" not in html, html
        assert "data.eval_size: the evaluation split holds 2 row(s)" in html, html
        assert "distributed.nproc_per_node: 4 processes on a machine with 2 CPU core(s)" in html
