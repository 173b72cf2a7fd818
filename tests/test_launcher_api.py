"""The launcher API the GUI calls, exercised with stand-in trainer commands (no torch in the children).

A stand-in is started exactly as launch() starts a real trainer: the supervisor leads a new
session, holds the run folder's lock and runs the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tunesmith.core.config import RunConfig
from tunesmith.core.errors import UserError
from tunesmith.core.paths import SOURCE_ROOT, child_env
from tunesmith.core.train.commands import build_command
from tunesmith.core.train.launcher import attach, launch, list_runs
from tunesmith.core.train.rundir import RunDir, RunDirBusy


def start_stand_in(run_dir, code: str) -> subprocess.Popen:
    """Start `python -c CODE` under the supervisor, as launch() does for a trainer."""
    rd = RunDir(run_dir)
    fd = rd.acquire_lock()
    try:
        rd.write_status(state="starting", message="Starting the trainer.")
        cmd = [sys.executable, "-m", "tunesmith.core.train.supervise", str(rd.path), "--", sys.executable, "-c", code]
        with open(rd.log_path, "ab") as log:
            popen = subprocess.Popen(cmd, cwd=str(SOURCE_ROOT), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, pass_fds=(fd,),
                                     env=child_env())
    finally:
        os.close(fd)
    rd.write_status(pid=popen.pid, pgid=popen.pid, pid_create_time=psutil.Process(popen.pid).create_time())
    return popen


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


SLEEPER = "import time, subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); " \
          "print('trainer up', flush=True); time.sleep(120)"


def test_build_command_picks_python_torchrun_or_srun():
    cfg = RunConfig()
    assert build_command(cfg, "/r")[1:] == ["-m", "tunesmith.core.train.entry", "/r"]
    cfg.distributed.nproc_per_node = 2
    cmd = build_command(cfg, "/r")
    assert cmd[0].endswith("torchrun") or cmd[1:3] == ["-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in cmd and "--nnodes=1" in cmd and cmd[-3:] == ["-m", "tunesmith.core.train.entry", "/r"]
    port = int(next(a for a in cmd if a.startswith("--master_port=")).split("=")[1])
    assert 1024 < port < 65536
    one = RunConfig()
    one.distributed.deepspeed = "zero2"  # DeepSpeed needs torchrun's environment even for one process
    assert "--nproc_per_node=1" in build_command(one, "/r")
    cfg.distributed.launcher = "slurm"
    cfg.distributed.nnodes = 2
    cmd = build_command(cfg, "/r")
    assert cmd[:4] == ["srun", "--nodes=2", "--ntasks-per-node=2", "--kill-on-bad-exit=1"]
    assert cmd[-2:] == ["--launcher", "slurm"]


def test_lock_refuses_a_second_holder_and_dies_with_its_process(tmp_path):
    rd = RunDir(tmp_path / "run")
    fd = rd.acquire_lock()
    with pytest.raises(RunDirBusy, match="in use"):
        rd.acquire_lock()
    assert rd.is_locked()
    os.close(fd)
    assert not rd.is_locked()
    # a process holding the lock that is killed -9 cannot keep it
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
                               "from tunesmith.core.train.rundir import RunDir; RunDir(sys.argv[2]).acquire_lock(); "
                               "print('locked', flush=True); time.sleep(60)", str(SOURCE_ROOT), str(rd.path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert rd.is_locked()
    holder.kill()
    holder.wait()
    assert not rd.is_locked()


def test_second_launch_on_a_live_run_folder_is_refused_and_kill_ends_every_process(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "busy"
    popen = start_stand_in(run_dir, SLEEPER)
    handle = attach(run_dir)
    assert wait_for(lambda: "trainer up" in (run_dir / "train.log").read_text())
    assert handle.is_alive()
    group = [p for p in psutil.process_iter() if _pgid(p.pid) == popen.pid]
    assert len(group) >= 3  # supervisor, stand-in trainer, its child
    cfg = RunConfig().with_overrides([f"model.name_or_path={tiny_model_dir}", f"data.path={tiny_model_dir}/config.json",
                                      "method.finetuning=lora"])
    with pytest.raises(RunDirBusy, match="in use by a running training"):
        launch(cfg, run_dir)
    assert handle.status()["state"] == "starting"  # the refused launch changed nothing
    handle.kill()
    popen.wait(timeout=10)
    assert wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in group), 10)
    status = handle.status()
    assert status["state"] == "stopped" and "Killed" in status["message"]
    assert not RunDir(run_dir).is_locked()


def _live(procs_) -> list:
    return [p for p in procs_ if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_second_stop_changes_nothing_and_only_force_kills(tmp_path):
    """Issue 9: a second Stop sent SIGKILL at once, so a double-click lost everything since the last checkpoint."""
    run_dir = tmp_path / "stop"
    popen = start_stand_in(run_dir, SLEEPER)
    handle = attach(run_dir)
    assert wait_for(lambda: "trainer up" in (run_dir / "train.log").read_text())
    group = [p for p in psutil.process_iter() if _pgid(p.pid) == popen.pid]
    assert handle.stop() == "stopping"
    assert RunDir(run_dir).stop_requested() and handle.status()["state"] == "stopping"
    assert handle.stop() == "already stopping"  # the stand-in ignores STOP, like a trainer finishing its step
    time.sleep(0.5)
    assert len(_live(group)) == len(group) >= 3 and handle.status()["state"] == "stopping"
    assert sorted(handle.kill()) == sorted(p.pid for p in group)  # the explicit action
    popen.wait(timeout=10)
    assert not handle.is_alive() and _live(group) == []
    assert handle.stop() == "not running"


def _forged_run(run_dir, **status):
    rd = RunDir(run_dir)
    rd.path.mkdir(parents=True, exist_ok=True)
    rd.write_status(state="running", **status)
    return rd


def test_kill_signals_only_processes_proven_to_be_the_runs_trainer(tmp_path, bystander):
    """Issue 9: Stop twice killed whatever pgid status.json named. A pid, start time or pgid copied into the file
    proves nothing: the live process must be the supervisor of this very folder (or name it on its command line)."""
    victim = psutil.Process(bystander.pid)
    created = victim.create_time()
    forged = [
        dict(pid=bystander.pid, pgid=bystander.pid, pid_create_time=created),  # the right start time, not a trainer
        dict(pid=999_999, pgid=bystander.pid),  # a dead pid and someone else's group
        dict(pid=1, pgid=1),  # pid 1 would reach every process the user may signal
        dict(procs=[[bystander.pid, round(created, 2)]]),  # a recorded "worker"
    ]
    for i, status in enumerate(forged):
        handle = attach(_forged_run(tmp_path / f"forged{i}", **status).path)
        try:
            assert handle.kill() == []
        except UserError as exc:
            assert "refusing to signal" in str(exc) and "Nothing was signalled" in str(exc)
        assert victim.is_running() and victim.status() != psutil.STATUS_ZOMBIE, status
    # the supervisor of another run, named by this folder's status.json with its true start time: refused too
    other = tmp_path / "other"
    popen = start_stand_in(other, SLEEPER)
    assert wait_for(lambda: "trainer up" in (other / "train.log").read_text())
    theirs = RunDir(other).read_status()
    mine = attach(_forged_run(tmp_path / "mine", pid=theirs["pid"], pgid=theirs["pgid"],
                              pid_create_time=theirs["pid_create_time"]).path)
    with pytest.raises(UserError, match="refusing to signal"):
        mine.kill()
    assert popen.poll() is None and attach(other).is_alive()
    # a recorded command line that differs from the live one is refused as well
    RunDir(other).write_status(pid_cmdline=["python", "-m", "tunesmith.core.train.supervise", str(other), "--", "x"])
    with pytest.raises(UserError, match="refusing to signal"):
        attach(other).kill()
    RunDir(other).write_status(pid_cmdline=None)
    assert attach(other).kill() and popen.wait(timeout=10) is not None  # the control: its own folder kills it


def test_cli_stop_is_graceful_twice_and_force_kills_only_a_proven_trainer(tmp_path, bystander):
    run_dir = tmp_path / "cli"
    popen = start_stand_in(run_dir, SLEEPER)
    assert wait_for(lambda: "trainer up" in (run_dir / "train.log").read_text())

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tunesmith", "stop", *args], capture_output=True, text=True,
                              cwd=str(SOURCE_ROOT), timeout=60)

    first, second = cli(str(run_dir)), cli(str(run_dir))
    assert first.returncode == 0 and first.stdout.strip() == "stopping"
    assert second.returncode == 0 and second.stdout.startswith("already stopping") and "--force" in second.stdout
    assert popen.poll() is None
    forged = _forged_run(tmp_path / "forged", pid=bystander.pid, pgid=bystander.pid,
                         pid_create_time=psutil.Process(bystander.pid).create_time())
    refused = cli("--force", str(forged.path))
    assert refused.returncode == 2 and "refusing to signal" in refused.stderr and bystander.poll() is None
    forced = cli("--force", str(run_dir))
    assert forced.returncode == 0 and forced.stdout.startswith("killed ")
    popen.wait(timeout=10)
    assert not attach(run_dir).is_alive() and RunDir(run_dir).read_status()["state"] == "stopped"


def test_sigterm_to_the_supervisor_requests_a_stop_and_a_second_kills_the_group(tmp_path):
    run_dir = tmp_path / "term"
    popen = start_stand_in(run_dir, SLEEPER)
    assert wait_for(lambda: "trainer up" in (run_dir / "train.log").read_text())
    os.kill(popen.pid, signal.SIGTERM)
    assert wait_for(lambda: RunDir(run_dir).read_status().get("state") == "stopping")
    assert RunDir(run_dir).stop_requested()
    os.kill(popen.pid, signal.SIGTERM)
    popen.wait(timeout=15)
    assert not attach(run_dir).is_alive()
    assert RunDir(run_dir).read_status()["state"] == "stopped"


@pytest.mark.parametrize("code, expected", [
    ("import sys; print('Traceback (most recent call last):'); print('ValueError: broken'); sys.exit(3)",
     "exit code 3"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL"),
])
def test_supervisor_explains_a_trainer_that_died_without_reporting(tmp_path, code, expected):
    run_dir = tmp_path / "died"
    popen = start_stand_in(run_dir, code)
    popen.wait(timeout=20)
    status = RunDir(run_dir).read_status()
    assert status["state"] == "failed" and expected in status["error"], status
    if "broken" in code:
        assert status["log"][-1] == "ValueError: broken"
    assert not RunDir(run_dir).is_locked()


def test_attach_reports_a_dead_process_that_still_says_running_as_failed(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    rd = RunDir(tmp_path / "stale")
    rd.write_status(state="running", pid=gone.pid, pgid=gone.pid, step=3, total_steps=10)
    (rd.path / "train.log").write_text("step 3\n")
    status = attach(rd.path).status()
    assert status["state"] == "failed"
    assert "gone" in status["error"] and "never reported" in status["error"]
    assert rd.read_status()["state"] == "failed"  # written back for every other reader


def test_attach_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        attach(tmp_path)


def test_list_runs_lists_run_folders_newest_first(tmp_path):
    for name, state in (("a", "finished"), ("b", "failed")):
        RunDir(tmp_path / name).write_status(state=state)
        time.sleep(0.01)
    (tmp_path / "not-a-run").mkdir()
    runs = list_runs(tmp_path)
    assert [(r["name"], r["state"]) for r in runs] == [("b", "failed"), ("a", "finished")]


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def test_workers_in_their_own_session_are_ended_when_their_launcher_dies(tmp_path):
    """Like torchrun (workers get new sessions) killed by -9: the supervisor still ends the orphans."""
    run_dir = tmp_path / "orphans"
    code = ("import os, signal, subprocess, sys, time; "
            "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True); "
            "print('worker', w.pid, flush=True); time.sleep(1.5); os.kill(os.getpid(), signal.SIGKILL)")
    popen = start_stand_in(run_dir, code)
    assert wait_for(lambda: "worker" in (run_dir / "train.log").read_text())
    worker = int((run_dir / "train.log").read_text().split("worker", 1)[1].split()[0])
    assert _pgid(worker) != popen.pid  # not in the run's process group
    popen.wait(timeout=20)
    assert wait_for(lambda: not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE,
                    10)
    assert RunDir(run_dir).read_status()["state"] == "failed"


def test_other_nodes_of_a_multi_node_run_keep_their_own_control_folder(tmp_path):
    from tunesmith.core.train.launcher import control_dir, prepare_run

    cfg = RunConfig().with_overrides([f"model.name_or_path={tmp_path}", f"data.path={tmp_path}",
                                      "method.finetuning=lora", "distributed.nnodes=2",
                                      "distributed.nproc_per_node=1"])
    (tmp_path / "config.json").write_text("{}")
    rd = RunDir(tmp_path / "run")
    assert control_dir(rd, cfg) is rd
    cfg.distributed.node_rank = 1
    assert control_dir(rd, cfg).path == rd.path / "nodes" / "node-1"
    ckpt = rd.checkpoints_dir / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    _, _, cmd = prepare_run(cfg, rd.path)  # node 1 joins node 0's run: no "already holds checkpoints"
    assert "--node_rank=1" in cmd and "--nnodes=2" in cmd
    cfg.distributed.node_rank = 0
    with pytest.raises(UserError, match="already holds checkpoints"):
        prepare_run(cfg, rd.path)


def test_a_run_outlives_the_process_that_launched_it_and_can_be_attached(tmp_path, tiny_model_dir):
    """The GUI process dies (kill -9) right after launch(): the run goes on; a new process attaches."""
    run_dir = tmp_path / "orphan-run"
    gui = ("import sys, time; sys.path.insert(0, sys.argv[1]); import tunesmith.core.train.launcher as L; "
           "from tunesmith.core.config import RunConfig; "
           "L.build_command = lambda cfg, rd: [sys.executable, '-c', 'import time; time.sleep(120)']; "
           "cfg = RunConfig().with_overrides(['model.name_or_path=' + sys.argv[3], 'data.path=' + sys.argv[3], "
           "'method.finetuning=lora']); h = L.launch(cfg, sys.argv[2]); print('launched', h.pid, flush=True); "
           "time.sleep(120)")
    app = subprocess.Popen([sys.executable, "-c", gui, str(SOURCE_ROOT), str(run_dir), str(tiny_model_dir)],
                           stdout=subprocess.PIPE, text=True)
    line = app.stdout.readline().split()
    assert line[0] == "launched", line
    app.kill()  # the GUI dies
    app.wait()
    handle = attach(run_dir)
    assert handle.pid == int(line[1]) and handle.is_alive()
    assert handle.status()["state"] == "starting" and RunDir(run_dir).is_locked()
    assert "time.sleep(120)" in (run_dir / "command.txt").read_text()
    handle.kill()
    assert wait_for(lambda: not handle.is_alive(), 10)
    assert handle.status()["state"] == "stopped"


def test_the_launcher_side_imports_no_torch():
    """The GUI imports these at start-up; torch/transformers load only in the trainer process."""
    code = ("import sys; import tunesmith.core.train.launcher, tunesmith.core.train.rundir, tunesmith.core.train.watch, tunesmith.core.cli.train_cmds; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'peft', 'trl', 'deepspeed') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=SOURCE_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_checking_and_launching_import_no_torch(tmp_path):
    """Not only importing: tunesmith.core.preflight's problems()/warnings() and launch() itself run without torch in
    the calling process (the trainer subprocess is the one that imports it)."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "data.jsonl").write_text('{"input": "q", "output": "a"}\n' * 20)
    code = ("import sys; from tunesmith.core import preflight; from tunesmith.core.config import RunConfig; "
            "from tunesmith.core.train.launcher import launch; "
            "cfg = RunConfig().with_overrides([f'model.name_or_path={sys.argv[1]}/model', "
            "f'data.path={sys.argv[1]}/data.jsonl', 'method.finetuning=lora', 'data.eval_size=0.1']); "
            "found = preflight.problems(cfg); preflight.warnings(cfg); assert not found, found; "
            "h = launch(cfg, sys.argv[1] + '/run'); h.kill(); h.wait(30); "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'peft', 'trl', 'deepspeed') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=SOURCE_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_engine_owns_the_queued_state_and_stopping_takes_a_run_off_the_queue(tmp_path):
    """A queued folder (config.yaml + the queued state) is listed as queued, never 'corrected' to failed
    (no process belongs to it yet), and stop / stop --force / kill take it off the queue and signal nothing."""
    rds = {}
    for name in ("a", "b", "c"):
        rd = RunDir(tmp_path / "runs" / name)
        RunConfig().save(rd.config_path)
        rd.mark_queued(after="other-run")
        rds[name] = rd
    assert attach(rds["a"].path).status()["state"] == "queued"
    assert {r["name"]: (r["state"], r["message"]) for r in list_runs(tmp_path / "runs")} == {
        n: ("queued", "Waiting for other-run to end.") for n in rds}

    assert attach(rds["a"].path).stop() == "dequeued"
    killed = attach(rds["b"].path).kill()
    assert killed == [] and killed.dequeued
    cli = subprocess.run([sys.executable, "-m", "tunesmith", "stop", "--force", str(rds["c"].path)],
                         capture_output=True, text=True, cwd=str(SOURCE_ROOT), timeout=60)
    assert cli.returncode == 0 and cli.stdout.strip() == "dequeued", cli.stderr
    for rd in rds.values():
        status = rd.read_status()
        assert (status["state"], status["message"]) == ("stopped", "Removed from the queue before it started.")
    assert attach(rds["a"].path).stop() == "not running"  # a second Stop changes nothing
    assert not attach(rds["b"].path).kill().dequeued  # no longer queued: a kill finds nothing to end
