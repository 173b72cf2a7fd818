"""Errors a user can act on.

Every failure caused by the user's input is raised as a :class:`UserError` carrying what went
wrong and how to fix it. The CLI prints it as one line (no traceback unless ``--debug``) and the
GUI shows it in the page. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib


class UserError(Exception):
    """A problem with the user's input, with advice on how to fix it."""

    def __init__(self, message: str, fix: str | None = None, *, field: str | None = None):
        self.message = message
        self.fix = fix
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field and not self.message.startswith(self.field) else self.message
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class ConfigError(UserError):
    """A RunConfig field holds a value that cannot work."""


class DataError(UserError):
    """A dataset file cannot be read or mapped."""


def close_matches(name: str, choices, n: int = 3) -> str:
    """Return "Did you mean: a, b?" for the nearest names, or a short list of choices.

    >>> close_matches("internlm2chat", ["internlm2_chat", "qwen_chat"])
    'Did you mean: internlm2_chat?'
    """
    choices = sorted(choices)
    hits = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if hits:
        return "Did you mean: " + ", ".join(hits) + "?"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"Choose one of: {shown}."
