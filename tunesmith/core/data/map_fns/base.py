"""Small pieces every map function shares: the row-skip signal, value cleaning, the MapFn record."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable


class RowSkipped(Exception):
    """This row cannot become a conversation; ``reason`` is counted in the dataset statistics."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def text(value, what: str = "a field") -> str:
    """A cell as training text: None -> "", str as is, plain numbers -> their digits.

    Anything else would reach the model as Python's repr (``['x', 'y']``, ``True``, ``nan``), so the
    row is dropped with a reason naming ``what`` instead.

    >>> text(None), text(3), text(2.5), text("a")
    ('', '3', '2.5', 'a')
    >>> text(["x", "y"], "'content'")
    Traceback (most recent call last):
    ...
    tunesmith.core.data.map_fns.base.RowSkipped: 'content' is a list, not text
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int
        raise RowSkipped(f"{what} is true/false, not text")
    if isinstance(value, int):
        _converted.number = True
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            _converted.number = True
            return str(value)
        raise RowSkipped(f"{what} is {value} (not a number), not text")
    kind = {list: "a list", tuple: "a list", dict: "an object"}.get(type(value), f"a {type(value).__name__}")
    raise RowSkipped(f"{what} is {kind}, not text")


_converted = threading.local()  # per thread: the GUI previews in threads, datasets maps in processes
NUMBER_NOTE = "a number was used as text (e.g. 4 became \"4\")"


def took_number() -> bool:
    """Whether :func:`text` turned a number into text since the last call (and reset)."""
    seen = getattr(_converted, "number", False)
    _converted.number = False
    return seen


def loose_text(value) -> str:
    """Any value as a string, for guessing a format from a first row (never drops anything)."""
    return "" if value is None else value if isinstance(value, str) else str(value)


def column(row: dict, name: str) -> str:
    """The text of a column the map function needs (a missing one is a KeyError: check_columns names it)."""
    value = row[name]
    return value if value.__class__ is str else text(value, f"'{name}'")  # the common case, once per row


def optional(row: dict, name: str) -> str:
    """The text of a column that may be absent ("" then)."""
    value = row.get(name)
    return value if value.__class__ is str else text(value, f"'{name}'")


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
