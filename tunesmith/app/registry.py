"""One registry of every widget, so one handler can see every field by its id.

Callbacks in :mod:`tunesmith.app.callbacks` are plain functions: they take ``values`` (``{id: value}``) and
return ``{id: value or Update(...)}``. They never import gradio, so tests call them directly.
:meth:`Registry.wire` turns such a function into a gradio event handler: it maps components to ids
and back, turns :class:`Update` into ``gr.update``, and shows a ``UserError`` (or an unexpected
crash) in the tab's status box instead of breaking the page.

Ids: ``section.field`` for RunConfig fields (see :mod:`tunesmith.app.form`), ``tab/name`` for everything else.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from typing import Any, Callable, Iterable

from tunesmith.core.errors import UserError

log = logging.getLogger("tunesmith.app")


class Update(dict):
    """Property changes for one widget (``label``, ``choices``, ``visible``, ``value``...).

    >>> Update(visible=False, value=3)
    Update({'visible': False, 'value': 3})
    """

    def __repr__(self) -> str:
        return f"Update({dict.__repr__(self)})"


def error_html(exc: BaseException | str, lang: str = "en") -> str:
    """The error box shown in a tab: the message, then the fix on its own line, in ``lang`` (an engine
    message the locale table knows is translated; any other stays as the engine wrote it).

    >>> error_html(UserError("no dataset given.", "Pick a demo set."))
    '<div class="ts-error"><b>Error:</b> no dataset given.<br><b>Fix:</b> Pick a demo set.</div>'
    >>> error_html(UserError("no dataset given.", "Pick a demo set."), "zh")
    '<div class="ts-error"><b>错误：</b> 没有给出数据集。<br><b>解决：</b> Pick a demo set.</div>'
    """
    from html import escape

    from tunesmith.app.engine_text import translate
    from tunesmith.app.locales import text

    error, fix_word = text("error_prefix", lang), text("fix_prefix", lang)
    if isinstance(exc, UserError):
        message = translate(exc.message, lang)
        head = f"{exc.field}: {message}" if exc.field and not exc.message.startswith(exc.field) else message
        fix = f"<br><b>{escape(fix_word)}</b> {escape(translate(exc.fix, lang))}" if exc.fix else ""
        return f'<div class="ts-error"><b>{escape(error)}</b> {escape(head)}{fix}</div>'
    return f'<div class="ts-error"><b>{escape(error)}</b> {escape(translate(str(exc), lang))}</div>'


def ok_html(text: str) -> str:
    from html import escape

    return f'<div class="ts-ok">{escape(text)}</div>'


def fn_name(fn: Callable) -> str:
    """A readable name for a function, a ``functools.partial`` or a lambda."""
    return getattr(fn, "__name__", None) or fn_name(getattr(fn, "func", repr))


def guarded(fn: Callable[[dict], Any], status_id: str | None) -> Callable[[dict], Any]:
    """Run ``fn`` so that any failure becomes an error message in ``status_id`` (works for generators)."""
    name = fn_name(fn)

    def failure(exc: BaseException, values) -> dict:
        lang = (values.get("top/lang") if isinstance(values, dict) else None) or "en"
        if isinstance(exc, UserError):
            return {status_id: error_html(exc, lang)} if status_id else {}
        log.error("callback %s failed:\n%s", name, traceback.format_exc())
        from tunesmith.app.locales import text as locale_text

        shown = locale_text("internal_error", lang, name=name, error=f"{type(exc).__name__}: {exc}")
        return {status_id: error_html(shown, lang)} if status_id else {}

    if inspect.isgeneratorfunction(fn):
        def run_gen(values: dict):
            try:
                yield from fn(values)
            except Exception as exc:  # noqa: BLE001 - shown to the user, app keeps serving
                yield failure(exc, values)
        run_gen.__name__ = name
        return run_gen

    def run(values: dict):
        try:
            return fn(values)
        except Exception as exc:  # noqa: BLE001 - shown to the user, app keeps serving
            return failure(exc, values)
    run.__name__ = name
    return run


class Registry:
    """``id -> component`` (and back), plus which ids are inputs a handler should receive."""

    def __init__(self) -> None:
        self._by_id: dict[str, Any] = {}
        self._ids: dict[int, str] = {}
        self._inputs: list[str] = []

    def add(self, elem_id: str, component: Any, *, is_input: bool = True) -> Any:
        if elem_id in self._by_id:
            raise KeyError(f"duplicate widget id {elem_id}")
        self._by_id[elem_id] = component
        self._ids[id(component)] = elem_id
        if is_input:
            self._inputs.append(elem_id)
        return component

    def __getitem__(self, elem_id: str) -> Any:
        return self._by_id[elem_id]

    def __contains__(self, elem_id: str) -> bool:
        return elem_id in self._by_id

    def ids(self, prefix: str = "") -> list[str]:
        return [i for i in self._by_id if i.startswith(prefix)]

    def input_ids(self) -> list[str]:
        return list(self._inputs)

    def id_of(self, component: Any) -> str:
        return self._ids[id(component)]

    def to_values(self, data: dict) -> dict[str, Any]:
        """gradio's ``{component: value}`` (from a set of inputs) -> ``{id: value}``."""
        return {self._ids[id(c)]: v for c, v in data.items() if id(c) in self._ids}

    def to_gradio(self, result: dict | None, out_ids: list[str]):
        """``{id: value | Update}`` -> one value per output, in order (``gr.skip()`` for the rest).

        An id that is not among the outputs is a wiring bug, reported loudly.
        """
        import gradio as gr

        result = {k: v for k, v in (result or {}).items() if k is not None}
        unknown = set(result) - set(out_ids)
        if unknown:
            raise KeyError(f"callback returned ids that are not outputs of this event: {sorted(unknown)}")
        out = []
        for elem_id in out_ids:
            if elem_id not in result:
                out.append(gr.skip())
            elif isinstance(result[elem_id], Update):
                out.append(gr.update(**result[elem_id]))
            else:
                out.append(result[elem_id])
        return out[0] if len(out) == 1 else out  # gradio wants a bare value for a single output

    def wire(self, event: Callable, fn: Callable[[dict], Any], outputs: Iterable[str], *,
             inputs: Iterable[str] | None = None, status: str | None = None, **event_kwargs):
        """Connect ``fn`` to a gradio event (e.g. ``button.click``).

        ``fn`` gets every registered input (or just ``inputs``) as ``{id: value}``; its returned
        ``{id: ...}`` may name any of ``outputs`` (plus ``status``, always allowed).
        """
        out_ids = list(dict.fromkeys([*outputs, *([status] if status else [])]))
        in_ids = list(inputs) if inputs is not None else self.input_ids()
        if "top/lang" in self._by_id and "top/lang" not in in_ids:
            in_ids.append("top/lang")  # every message, errors included, in the page's language
        safe = guarded(fn, status)
        registry = self

        if inspect.isgeneratorfunction(safe):
            def handler(data=None):
                for result in safe(registry.to_values(data or {})):
                    yield registry.to_gradio(result, out_ids)
        else:
            def handler(data=None):
                return registry.to_gradio(safe(registry.to_values(data or {})), out_ids)
        handler.__name__ = fn_name(fn)
        return event(handler, inputs={self._by_id[i] for i in in_ids},
                     outputs=[self._by_id[i] for i in out_ids], **event_kwargs)
