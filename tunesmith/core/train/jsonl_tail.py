"""Reading a growing JSON-lines file (metrics.jsonl, samples.jsonl) without re-reading what was read before.

The GUI polls a running run every 2 s; re-parsing the whole metrics file each time costs more the longer the
run. :class:`JsonlTail` keeps the byte offset of the last complete line and parses only what was appended:

* a torn last line (no newline yet: the trainer is writing it) is left for the next read;
* a file that got shorter or was replaced (resume truncates metrics with an atomic rename) is read again from
  the start;
* a line that is not JSON is skipped, as :func:`tunesmith.core.train.rundir._read_jsonl` does.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
>>> _ = path.write_text('{"step": 1}\\n{"step": 2')
>>> tail = JsonlTail(path)
>>> tail.read()
[{'step': 1}]
>>> with open(path, "a") as fh:
...     _ = fh.write('}\\n')
>>> tail.read()
[{'step': 1}, {'step': 2}]
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path


class JsonlTail:
    """The records of one JSON-lines file, kept up to date by reading only the appended bytes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._records: list = []
        self._offset = 0
        self._identity = None  # (device, inode) of the file read so far
        self.rereads = 0  # how often the file was read again from the start (truncated, replaced, removed)

    def _reset(self, identity) -> None:
        if self._offset or self._records:
            self.rereads += 1
        self._records, self._offset, self._identity = [], 0, identity

    def read(self) -> list:
        """Every complete record of the file (a new list; the records themselves are shared)."""
        with self._lock:
            try:
                fh = open(self.path, "rb")
            except FileNotFoundError:
                self._reset(None)
                return []
            with fh:
                st = os.fstat(fh.fileno())
                identity = (st.st_dev, st.st_ino)
                if identity != self._identity or st.st_size < self._offset:
                    self._reset(identity)  # replaced or truncated: read it again from the start
                if st.st_size > self._offset:
                    fh.seek(self._offset)
                    chunk = fh.read(st.st_size - self._offset)
                    end = chunk.rfind(b"\n") + 1  # a torn last line waits for its newline
                    for line in chunk[:end].splitlines():
                        try:
                            self._records.append(json.loads(line))
                        except ValueError:
                            continue
                    self._offset += end
            return list(self._records)


_TAILS: OrderedDict[str, JsonlTail] = OrderedDict()
_TAILS_LOCK = threading.Lock()
_MAX_TAILS = 32  # files followed at once (runs shown in open browser tabs)


def read_appended(path: str | Path) -> list:
    """The records of ``path``, reusing what earlier calls for the same file parsed (the GUI's poll)."""
    key = str(Path(path).resolve())
    with _TAILS_LOCK:
        tail = _TAILS.pop(key, None) or JsonlTail(key)
        _TAILS[key] = tail
        while len(_TAILS) > _MAX_TAILS:
            _TAILS.popitem(last=False)
    return tail.read()
