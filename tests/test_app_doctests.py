"""The input/output examples in the app's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["tunesmith.app.commands", "tunesmith.app.form", "tunesmith.app.locales", "tunesmith.app.plots", "tunesmith.app.registry", "tunesmith.app.render_data",
           "tunesmith.app.render_train", "tunesmith.app.run_queue", "tunesmith.app.security", "tunesmith.app.settings", "tunesmith.app.callbacks.common",
           "tunesmith.app.callbacks.method_cb", "tunesmith.app.tabs.widgets", "tunesmith.app.engine_text", "tunesmith.app.callbacks.data_cb",
           "tunesmith.app.callbacks.chat_cb", "tunesmith.app.callbacks.lang_cb"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
