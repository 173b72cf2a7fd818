"""The ``tunesmith`` command: the engine's verbs (:mod:`tunesmith.core.cli`) plus ``studio``.

``studio`` is dispatched here rather than registered in the engine's parser because the engine never
imports the GUI; its flags are the studio's own (``tunesmith studio --help``).
"""

from __future__ import annotations

import sys

STUDIO_HELP = "open the studio in the browser (tunesmith studio --help for its flags)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["studio"]:
        from tunesmith.app.launch import main as studio

        return studio(argv[1:])
    from tunesmith.core.cli import main as engine

    return engine(argv, also={"studio": STUDIO_HELP})
