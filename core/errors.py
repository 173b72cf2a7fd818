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

    >>> close_matches("internlm2chat", ["internlm2_chat", "gemma"])
    'Did you mean: internlm2_chat?'
    """
    choices = sorted(choices)
    hits = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if hits:
        return "Did you mean: " + ", ".join(hits) + "?"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"Choose one of: {shown}."


def missing_model_error(name: str, what: str = "model folder", *, field: str | None = None,
                        cls: type[UserError] = UserError) -> UserError:
    """The error for a model path that is not a folder: missing, or a file given instead of a folder.

    >>> str(missing_model_error("/no/such/dir"))  # doctest: +ELLIPSIS
    'model folder /no/such/dir does not exist. Fix: Give an existing folder with config.json, ...'
    """
    import os

    if os.path.isfile(os.path.expanduser(name)):
        return cls(f"{name} is a file, not a model folder.",
                   "Give the folder that holds config.json and the weights (a .gguf file must be imported "
                   "first: python -m core import-gguf FILE OUT_DIR).", field=field)
    return cls(f"{what} {name} does not exist.", "Give an existing folder with config.json, a hub id like "
               "HuggingFaceTB/SmolLM2-135M-Instruct, or embedded:SmolLM2-135M-Instruct.", field=field)
