"""The input/output examples in core's docstrings are collected and must stay true (issue 10).

Every module of core/ whose source holds a ``>>>`` example is listed here by a scan, so a new doctest is
collected without editing this file (tests/test_app_doctests.py does the same for app/).
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules_with_examples() -> list[str]:
    found = []
    for path in sorted((ROOT / "tunesmith" / "core").rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


MODULES = _modules_with_examples()


def test_the_scan_finds_the_core_doctests():
    assert {"tunesmith.core.config", "tunesmith.core.refs", "tunesmith.core.data.templates", "tunesmith.core.errors"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
