"""The registry turns plain callbacks into gradio handlers; failures become messages, never a crash."""

from __future__ import annotations

import gradio as gr
import pytest

from tunesmith.app.registry import Registry, Update, error_html, guarded
from tunesmith.core.errors import ConfigError, UserError


def test_guarded_turns_user_errors_into_the_status_box():
    def bad(values):
        raise ConfigError("must be >= 1, got 0.", "Use a positive number.", field="training.batch_size")

    out = guarded(bad, "x/status")({})
    assert "training.batch_size: must be &gt;= 1, got 0." in out["x/status"]
    assert "Fix:</b> Use a positive number." in out["x/status"]


def test_guarded_reports_bugs_without_raising():
    def buggy(values):
        return values["missing"]

    out = guarded(buggy, "x/status")({})
    assert "internal error in buggy: KeyError" in out["x/status"]
    assert "still running" in out["x/status"]


def test_guarded_generators_keep_what_they_yielded_then_report():
    def gen(values):
        yield {"a": 1}
        raise UserError("boom.", "Do less.")

    results = list(guarded(gen, "s")({}))
    assert results[0] == {"a": 1} and "boom." in results[1]["s"]


def test_to_gradio_orders_outputs_and_skips_the_rest():
    reg = Registry()
    with gr.Blocks():
        reg.add("a", gr.Textbox())
        reg.add("b", gr.Textbox())
        reg.add("c", gr.Textbox(), is_input=False)
    out = reg.to_gradio({"b": Update(visible=False), "a": "x"}, ["a", "b", "c"])
    assert out[0] == "x"
    assert out[1]["visible"] is False and out[1]["__type__"] == "update"
    assert out[2] == gr.skip()
    assert reg.to_gradio({"a": "only"}, ["a"]) == "only"
    with pytest.raises(KeyError, match="not outputs"):
        reg.to_gradio({"zzz": 1}, ["a"])
    assert reg.input_ids() == ["a", "b"]


def test_values_are_keyed_by_id():
    reg = Registry()
    with gr.Blocks():
        a = reg.add("sec.a", gr.Number())
    assert reg.to_values({a: 3}) == {"sec.a": 3}
    with pytest.raises(KeyError, match="duplicate"):
        reg.add("sec.a", a)


def test_error_html_escapes():
    assert "&lt;script&gt;" in error_html(UserError("<script>", None))
