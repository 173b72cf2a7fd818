"""tunesmith.core.files: the one atomic write and the one short lock (issue 10)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tunesmith.core.files import atomic_write_text, file_lock

ROOT = Path(__file__).resolve().parent.parent


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "deep" / "status.json", "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["status.json"]


def test_file_lock_keeps_a_read_merge_write_whole(tmp_path):
    counter = tmp_path / "n"
    counter.write_text("0")

    def bump():
        for _ in range(20):
            with file_lock(tmp_path / ".lock"):
                n = int(counter.read_text())
                time.sleep(0.001)
                atomic_write_text(counter, str(n + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "80"


def test_no_module_writes_its_own_atomic_file_or_flock_but_the_run_lock():
    offenders = []
    for path in sorted((ROOT / "tunesmith" / "core").rglob("*.py")):
        if path.name == "files.py" and path.parent.name == "core":
            continue
        text = path.read_text(encoding="utf-8")
        if "fcntl.flock" in text and path.relative_to(ROOT).as_posix() != "tunesmith/core/train/rundir.py":
            offenders.append(f"{path.name}: flock")
        if "def _atomic_write" in text or "def _file_lock" in text or "def _flocked" in text:
            offenders.append(f"{path.name}: own helper")
    assert offenders == []
