"""`tunesmith VERB ...` (or `python -m tunesmith VERB ...`): the headless CLI (XTuner's verbs, plus a few of our own).

Each verb group lives in its own module with a ``register(subparsers)`` function; heavy imports
happen inside the command functions so ``--help`` stays instant. A :class:`~tunesmith.core.errors.UserError`
becomes one ``error: ...`` line and exit code 2; other exceptions print a one-line summary unless
``--debug`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from tunesmith import __version__
from tunesmith.core.errors import UserError

COMMAND_MODULES = (
    "tunesmith.core.cli.model_cmds",
    "tunesmith.core.cli.data_cmds",
    "tunesmith.core.cli.train_cmds",
    "tunesmith.core.cli.preset_cmds",
    "tunesmith.core.cli.export_cmds",
    "tunesmith.core.cli.chat_cmds",
    "tunesmith.core.cli.serve_cmds",
    "tunesmith.core.cli.eval_cmds",
)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one ``error: ... Fix: ...`` line (exit 2) instead of the usage block,
    like every other error of the CLI. Sub-commands inherit the class."""

    def error(self, message: str):
        self.exit(2, f"error: {message.rstrip('.')}. Fix: see `{self.prog} --help` for the options.\n")


def build_parser(also: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The engine's parser; ``also`` lists verbs handled before it (``studio``) so --help shows them."""
    parser = OneLineErrorParser(
        prog="tunesmith",
        description="Tunesmith engine: check data, train, convert, merge and chat from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"tunesmith {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for name, help_text in (also or {}).items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None, also: dict[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("TUNESMITH_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser(also)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
        return int(result or 0)
    except UserError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: keep the message short unless asked
        if debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc}\n(run again with --debug for the traceback)", file=sys.stderr)
        return 1
