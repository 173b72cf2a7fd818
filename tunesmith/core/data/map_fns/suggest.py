"""Guessing the map_fn from a file's columns (and its first row)."""

from __future__ import annotations

from tunesmith.core.data.map_fns.base import as_list, loose_text
from tunesmith.core.data.map_fns.columns import COLUMNS, GENERIC_PAIRS

# (columns that must all be present, map_fn); checked in order, most specific first. Only layouts
# whose columns are unique to a map_fn: a domain map_fn adds its own system prompt ("you are a
# Chinese lawyer"), which generic columns such as question/answer must never get by a guess.
_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("conversation",), "standard"),
    (("messages",), "openai"),
    (("conversations",), "sharegpt"),
    (("instruction_zh", "output_zh"), "alpaca_zh"),
    (("description", "color"), "colors"),
    (("abstract", "title"), "arxiv"),
    (("system_prompt", "question", "response"), "openorca"),
    (("context", "question", "answer"), "sql"),
)

def suggest(column_names, first_row: dict | None = None) -> str | None:
    """Guess the map_fn from the column names (and the first row, to tell Guanaco text from plain text).

    >>> suggest(["messages"]), suggest(["instruction", "input", "output"]), suggest(["text"])
    ('openai', 'columns', 'pretrain')
    >>> suggest(["text"], {"text": "### Human: Hi### Assistant: Hello"})
    'oasst1'
    >>> suggest(["foo", "bar"]) is None
    True
    """
    present = set(column_names)
    rules = (*_RULES, *(((q, a), COLUMNS) for q, a in GENERIC_PAIRS), (("text",), "pretrain"))
    for needed, name in rules:
        if all(c in present for c in needed):
            if name == "pretrain" and first_row and "### Human:" in loose_text(first_row.get("text")):
                return "oasst1"
            if name == "sharegpt" and first_row:
                roles = {loose_text(m.get("from")) for m in as_list(first_row.get("conversations")) if isinstance(m, dict)}
                if "system" in roles and "user" in roles and any(
                        "<|startofthink|>" in loose_text(m.get("value")) for m in as_list(first_row.get("conversations"))
                        if isinstance(m, dict)):
                    return "msagent_react"
            return name
    return None
