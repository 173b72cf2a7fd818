"""All UI text in one table per language, switchable while the page is open.

``LOCALES[lang][id]`` is a dict of widget properties (``label``, ``info``, ``placeholder``, ``value``
for buttons and headings). ``MESSAGES[lang][key]`` holds status texts shown by callbacks. English
``info`` falls back to the RunConfig field's help text so the two never drift apart.

>>> props("training.learning_rate", "zh")["label"]
'学习率'
>>> text("run_started", "en", run="r1")
'Started run r1.'
"""

from __future__ import annotations

from tunesmith.app.locales import en, zh

LANGS = ("en", "zh")
LANG_NAMES = {"en": "English", "zh": "简体中文"}
LOCALES = {"en": en.LABELS, "zh": zh.LABELS}
MESSAGES = {"en": en.MESSAGES, "zh": zh.MESSAGES}


def _config_help(elem_id: str) -> str:
    if elem_id.count(".") != 1 or "/" in elem_id:
        return ""
    from tunesmith.core.config import help_for

    section, name = elem_id.split(".")
    try:
        return help_for(section, name)
    except KeyError:
        return ""


def props(elem_id: str, lang: str) -> dict:
    """Widget properties for ``elem_id`` in ``lang`` (English when a key is missing)."""
    lang = lang if lang in LOCALES else "en"
    entry = dict(LOCALES["en"].get(elem_id, {}))
    entry.update(LOCALES[lang].get(elem_id, {}))
    if "label" in entry and "info" not in entry and lang == "en":
        help_text = _config_help(elem_id)
        if help_text:
            entry["info"] = help_text
    return entry


def text(key: str, lang: str, **fmt) -> str:
    """A status message in ``lang``, formatted with ``fmt``."""
    lang = lang if lang in MESSAGES else "en"
    template = MESSAGES[lang].get(key) or MESSAGES["en"].get(key) or key
    return template.format(**fmt) if fmt else template


def label(elem_id: str, lang: str) -> str:
    return props(elem_id, lang).get("label", elem_id)
