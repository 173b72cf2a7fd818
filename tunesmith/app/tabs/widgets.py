"""Widget factory: one call makes a registered, labelled gradio component.

``field(ctx, "training.learning_rate")`` picks the component from the RunConfig field's type and
allowed values (check box, drop-down, number, text), its start value from the default config, and
its label/info from the locale table, then registers it under the field's path.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

import gradio as gr

from tunesmith.app.locales import props
from tunesmith.app.registry import Registry
from tunesmith.core.config import SECTIONS


@dataclass
class BuildContext:
    """What every tab builder needs: the registry, the language and the form's start values."""

    reg: Registry
    lang: str
    values: dict[str, Any]
    settings: Any = None


def _field_meta(path: str):
    section, name = path.split(".")
    cls = SECTIONS[section]
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return typing.get_type_hints(cls)[name], f.metadata.get("choices")


def field(ctx: BuildContext, path: str, cls=None, **kwargs) -> Any:
    """A widget editing RunConfig field ``path``, registered under ``path`` (``cls`` overrides the kind)."""
    kind, choices = _field_meta(path)
    text = props(path, ctx.lang)
    common = {"label": text.get("label", path), "info": text.get("info"), "value": ctx.values.get(path),
              "elem_id": _dom_id(path)}
    if choices and "choices" not in kwargs:
        kwargs["choices"] = list(choices)
    if cls is not None:
        comp = cls(**common, **kwargs)
    elif kind is bool:
        comp = gr.Checkbox(**common, **kwargs)
    elif "choices" in kwargs:
        comp = gr.Dropdown(**common, **kwargs)
    elif kind in (int, float):
        comp = gr.Number(**common, precision=0 if kind is int else None, **kwargs)
    else:
        lines = kwargs.pop("lines", 1)
        comp = gr.Textbox(**common, lines=lines, placeholder=text.get("placeholder"), **kwargs)
    return ctx.reg.add(path, comp)


def widget(ctx: BuildContext, elem_id: str, cls, *, is_input: bool = True, **kwargs) -> Any:
    """Any other component, labelled from the locale table and registered under ``elem_id``."""
    text = props(elem_id, ctx.lang)
    for key in ("label", "info", "placeholder", "value", "choices"):
        if key in text and key not in kwargs and _accepts(cls, key):
            kwargs[key] = text[key]
    if "value" not in kwargs and elem_id in ctx.values:
        kwargs["value"] = ctx.values[elem_id]
    kwargs.setdefault("elem_id", _dom_id(elem_id))
    return ctx.reg.add(elem_id, cls(**kwargs), is_input=is_input)


def command_box(ctx: BuildContext, elem_id: str) -> Any:
    """The read-only "same from the command line" box under an action, with a copy button."""
    # Tall enough for a long command shown whole (it wraps, see .ts-cmd in app/css.py), not cut at 8 lines.
    return widget(ctx, elem_id, gr.Textbox, is_input=False, value="", interactive=False, lines=1, max_lines=40,
                  buttons=["copy"], elem_classes=["ts-cmd"])


def container(ctx: BuildContext, elem_id: str, cls, **kwargs) -> Any:
    """A labelled layout block (Tab, Accordion) that relabels on a language switch."""
    text = props(elem_id, ctx.lang)
    comp = cls(label=text.get("label", elem_id), elem_id=_dom_id(elem_id), **kwargs)
    ctx.reg.add(elem_id, comp, is_input=False)
    return comp


def _accepts(cls, key: str) -> bool:
    import inspect

    try:
        return key in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def _dom_id(elem_id: str) -> str:
    """A CSS-safe DOM id, e.g. ``training.learning_rate`` -> ``ts-training-learning_rate``.

    >>> _dom_id("data/col_input")
    'ts-data-col_input'
    """
    return "ts-" + elem_id.replace(".", "-").replace("/", "-")
