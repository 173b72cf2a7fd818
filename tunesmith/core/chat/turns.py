"""Token-by-token turns between conversations generating at the same time.

Eight sessions each running generate() in their own thread all fight for the interpreter lock and the
CPU cores; on a small machine everything else in the app (another tab's request, the web server's own
loop) then waits seconds for its share. With turns, one generation step runs at a time and the others
sleep on a condition (a sleeping thread does not compete for the interpreter lock), in first-come
order, so every answer still advances at the same pace and the rest of the app stays quick.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager


class Turns:
    """A fair (first come, first served) lock that its holder hands on between steps.

    >>> turns = Turns()
    >>> with turns.held():
    ...     turns.pass_on()          # nobody waiting: keeps the turn
    ...     turns.waiting
    0
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._next = 0     # the ticket the next arrival takes
        self._serving = 0  # the ticket whose holder may run

    @property
    def waiting(self) -> int:
        """Threads queued behind the current holder."""
        with self._cond:
            return max(0, self._next - self._serving - 1)

    def acquire(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                self._cond.wait()

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    def pass_on(self) -> None:
        """Between two steps: let every thread that queued meanwhile take its step, then go on."""
        if self.waiting:
            self.release()
            self.acquire()

    @contextmanager
    def held(self):
        self.acquire()
        try:
            yield self
        finally:
            self.release()
