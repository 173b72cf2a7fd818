"""Progress reporting shared by the GUI (a ``progress(fraction, message)`` callback) and the CLI (tqdm)."""

from __future__ import annotations

import logging
from typing import Callable

ProgressFn = Callable[[float, str], None]

log = logging.getLogger("tunesmith.export")


class Progress:
    """Report named stages as fractions in [0, 1], never going backwards.

    >>> seen = []
    >>> p = Progress(lambda f, m: seen.append((round(f, 2), m)))
    >>> p(0.5, "half"); p(0.2, "late"); p.done("ok")
    >>> seen
    [(0.5, 'half'), (0.5, 'late'), (1.0, 'ok')]
    """

    def __init__(self, callback: ProgressFn | None = None):
        self.callback = callback
        self.fraction = 0.0
        self.warnings: list[str] = []

    def __call__(self, fraction: float, message: str) -> None:
        self.fraction = max(self.fraction, min(1.0, float(fraction)))
        log.info("%3.0f%% %s", self.fraction * 100, message)
        if self.callback is not None:
            self.callback(self.fraction, message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)
        self(self.fraction, f"warning: {message}")

    def done(self, message: str) -> None:
        self(1.0, message)


def tqdm_progress(description: str):
    """A (callback, close) pair drawing a tqdm bar on stderr; warnings are printed above it."""
    import sys

    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, file=sys.stderr, bar_format="{percentage:3.0f}%|{bar:24}| {desc}")

    def callback(fraction: float, message: str) -> None:
        if message.startswith("warning: "):
            bar.write(message, file=sys.stderr)
            return
        bar.set_description_str(f"{description}: {message[:70]}", refresh=False)
        bar.update(max(0, round(fraction * 100) - bar.n))

    return callback, bar.close
