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
                   "first: python -m tunesmith import-gguf FILE OUT_DIR).", field=field)
    return cls(f"{what} {name} does not exist.", "Give an existing folder with config.json, a hub id like "
               "HuggingFaceTB/SmolLM2-135M-Instruct, or embedded:SmolLM2-135M-Instruct.", field=field)


REMOTE_CODE_FIX = ("Only if you trust the model's authors: tick 'Trust remote code' in the Model tab, or set "
                   "model.trust_remote_code: true in the config (train: --set model.trust_remote_code=true; "
                   "chat: --trust-remote-code).")


def needs_remote_code(exc: BaseException) -> bool:
    """Whether transformers refused to load a model because it ships its own code and trust_remote_code is off.

    >>> needs_remote_code(ValueError("The repository x contains custom code which must be executed to correctly "
    ...                              "load the model."))
    True
    """
    text = str(exc)
    return "contains custom code which must be executed" in text or "trust_remote_code=True" in text


def remote_code_error(name: str = "", cls: type[UserError] = UserError, exc: BaseException | None = None) -> UserError:
    """The error for a model that needs trust_remote_code, naming where to turn it on (the model's name
    from ``exc``'s text when not given).

    >>> remote_code_error(exc=ValueError("The repository /m/x contains custom code which ...")).message[:20]
    'the model /m/x needs'
    """
    if not name and exc is not None:
        import re

        found = re.search(r"repository (\S+) contains custom code", str(exc))
        name = found.group(1) if found else ""
    return cls(f"the model{' ' + name if name else ''} needs its own Python code to load (it ships modeling files and "
               "model.trust_remote_code is off).", REMOTE_CODE_FIX, field="model.trust_remote_code")
