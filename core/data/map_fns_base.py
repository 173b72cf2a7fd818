"""Small pieces every map function shares: the row-skip signal, value cleaning, the MapFn record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


class RowSkipped(Exception):
    """This row cannot become a conversation; ``reason`` is counted in the dataset statistics."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def text(value) -> str:
    """A cell as text: None -> "", numbers -> str.

    >>> text(None), text(3), text("a")
    ('', '3', 'a')
    """
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def as_list(value) -> list:
    """A cell that should hold a list: None -> [], a dict -> [dict]."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return list(value)


@dataclass(frozen=True)
class MapFn:
    """A named map function with the columns it needs (for checks and suggestions)."""

    name: str
    fn: Callable[[dict], dict]
    required: tuple[str, ...]
    summary: str
    optional: tuple[str, ...] = field(default=())
    pretrain: bool = False  # plain text: no template, no EOS

    def __call__(self, row: dict) -> dict:
        return self.fn(row)

    @property
    def doc(self) -> str:
        return self.fn.__doc__ or ""
