"""When queued runs start: the oldest, once nothing else is active, by a thread of the app process.

A queued run is an ordinary run folder holding its ``config.yaml`` and the engine's ``queued`` state
(:meth:`RunDir.mark_queued <tunesmith.core.train.rundir.RunDir.mark_queued>`; the engine's status,
stop and kill know it: stopping a queued run takes it off the queue). This module only decides when
one starts. Because the queue lives on disk and is served by the app process (not the browser),
closing the tab does not lose it, and a restarted app picks it up again.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from tunesmith.app.settings import AppSettings
from tunesmith.core.config import RunConfig
from tunesmith.core.errors import UserError
from tunesmith.core.train.rundir import ACTIVE_STATES, QUEUED, RunDir

log = logging.getLogger("tunesmith.app")


def enqueue(cfg: RunConfig, run_dir: Path, after: str = "") -> Path:
    """Write the run folder of a run that starts when the GPUs are free."""
    rd = RunDir(run_dir)
    rd.path.mkdir(parents=True, exist_ok=True)
    cfg.output.run_dir = str(rd.path)
    cfg.save(rd.config_path)
    rd.mark_queued(after)
    return rd.path


def _states(runs_root: Path) -> list[tuple[Path, dict]]:
    if not runs_root.is_dir():
        return []
    out = []
    for child in runs_root.iterdir():
        if child.is_dir() and (child / "status.json").is_file():
            out.append((child, RunDir(child).read_status()))
    return out


def active_runs(runs_root: Path) -> list[dict]:
    """Runs under ``runs_root`` whose processes still live (newest first), from list_runs."""
    from tunesmith.core.train.launcher import list_runs

    return [r for r in list_runs(runs_root) if r["state"] in ACTIVE_STATES]


def queued_runs(runs_root: Path) -> list[Path]:
    """Queued run folders, oldest first."""
    found = [(s.get("queued_at") or 0, p) for p, s in _states(runs_root) if s.get("state") == QUEUED]
    return [p for _, p in sorted(found)]


def tick(settings: AppSettings) -> Path | None:
    """Start the oldest queued run when nothing is active; return its folder (None when nothing started)."""
    from tunesmith.app.callbacks.common import app_folders, check_config
    from tunesmith.core.train.launcher import launch

    runs_root = settings.runs_root
    own = app_folders(settings)
    waiting = [p for p in queued_runs(runs_root) if p.resolve() not in own]
    if not waiting or any(Path(r["run_dir"]).resolve() not in own for r in active_runs(runs_root)):
        return None
    run_dir = waiting[0]
    rd = RunDir(run_dir)
    try:
        # The queued config.yaml waited on disk: it passes the GUI's check again before it runs.
        cfg = check_config(RunConfig.load(rd.config_path), settings, run_dir=run_dir)
        launch(cfg, run_dir)
    except UserError as exc:  # e.g. a path that vanished while it waited: say so in its own status
        rd.write_status(state="failed", message=str(exc), error=exc.message, advice=exc.fix or "")
        return None
    log.info("started queued run %s", run_dir)
    return run_dir


class QueueWorker(threading.Thread):
    """Calls :func:`tick` every few seconds for the life of the app process."""

    def __init__(self, settings: AppSettings, interval: float = 2.0):
        super().__init__(name="tunesmith-queue", daemon=True)
        self.settings = settings
        self.interval = interval
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                tick(self.settings)
            except Exception:  # noqa: BLE001 - a bad folder must not end the worker
                log.exception("queue tick failed")

    def stop(self) -> None:
        self._halt.set()
