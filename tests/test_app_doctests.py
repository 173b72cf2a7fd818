"""The input/output examples in the app's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["app.commands", "app.form", "app.locales", "app.plots", "app.registry", "app.render_data",
           "app.render_train", "app.run_queue", "app.security", "app.settings", "app.callbacks.common",
           "app.callbacks.method_cb", "app.tabs.widgets", "app.engine_text", "app.callbacks.data_cb",
           "app.callbacks.chat_cb"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
