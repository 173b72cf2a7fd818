"""The language switch: every text of the page in the new language, in one answer.

Why one callback: the five parts below used to be five handlers of the language box, and gradio ran them
one after another, each about half a second with the whole page relabelled in between; a switch right after
another waited for the first one's queue (5.3 s after two previews, bench/studio_latency.py).
"""

from __future__ import annotations

from tunesmith.app.callbacks import data_cb, method_cb
from tunesmith.app.callbacks.common import lang_of
from tunesmith.app.callbacks.config_cb import change_lang
from tunesmith.app.locales import label
from tunesmith.app.registry import Update, guarded
from tunesmith.app.settings import AppSettings


def merged(*results: dict) -> dict:
    """The parts' answers as one: a widget named by several gets all their changes (later ones win).

    >>> merged({"a": Update(label="A"), "b": 1}, {"a": "text", "c": 2})
    {'a': Update({'label': 'A', 'value': 'text'}), 'b': 1, 'c': 2}
    """
    out: dict = {}
    for result in results:
        for elem_id, change in result.items():
            if elem_id not in out:
                out[elem_id] = change
                continue
            before = out[elem_id] if isinstance(out[elem_id], Update) else Update(value=out[elem_id])
            after = change if isinstance(change, Update) else Update(value=change)
            out[elem_id] = Update({**before, **after})
    return out


def switch_language(values: dict, registered_ids: list[str], settings: AppSettings) -> dict:
    """Labels of every widget, the texts that are values (the columns line, the statistics table, the
    histogram's axes), the memory estimate and the language box's own label, in ``values["top/lang"]``.
    Each part fails on its own: an estimate that cannot be made shows its error and the labels still change.
    """
    lang = lang_of(values)
    parts = (guarded(lambda v: change_lang(v, registered_ids), "top/status"),
             guarded(lambda v: data_cb.relabel_suggest(v, settings), None),
             guarded(method_cb.estimate, "method/status"),
             guarded(data_cb.relabel_stats, None))
    # the box's own label: a label change fires no change event, so it cannot loop
    return merged(*(part(values) for part in parts), {"top/lang": Update(label=label("top/lang", lang))})
