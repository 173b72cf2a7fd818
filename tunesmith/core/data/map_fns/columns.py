"""Column mapping for any other layout ({role: column}), and the mapping for generic columns."""

from __future__ import annotations

from tunesmith.core.data.map_fns.base import MapFn, RowSkipped, as_list, text
from tunesmith.core.data.map_fns.messages import openai_map_fn, sharegpt_map_fn
from tunesmith.core.errors import UserError

ROLES = ("system", "input", "output", "history", "text")
COLUMNS = "columns"  # the map_fn name of a column mapping


def parse_columns_arg(spec: str) -> dict:
    """``"input=q,output=a"`` -> ``{"input": "q", "output": "a"}``.

    >>> parse_columns_arg("input=question, output=answer,system=sys")
    {'input': 'question', 'output': 'answer', 'system': 'sys'}
    """
    mapping = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise UserError(f"column mapping '{part}' is not ROLE=COLUMN.",
                            "Example: --columns input=question,output=answer (roles: system, input, output, history).")
        role, column = (s.strip() for s in part.split("=", 1))
        mapping[role] = column
    return mapping


def _history_turns(history, names: dict) -> list[dict]:
    """Earlier turns from a history cell: [[q, a], ...], [{input, output}, ...] or chat messages."""
    turns = []
    items = as_list(history)
    if items and all(isinstance(m, dict) for m in items) and any(("role" in m or "from" in m) for m in items):
        if any("from" in m for m in items):
            return sharegpt_map_fn({"conversations": items})["conversation"]
        return openai_map_fn({"messages": items})["conversation"]
    for item in items:
        if isinstance(item, dict):
            turn = {"input": text(item.get(names.get("input", "input"), item.get("input")), "a history 'input'"),
                    "output": text(item.get(names.get("output", "output"), item.get("output")), "a history 'output'")}
            system = text(item.get(names.get("system", "system"), item.get("system")), "a history 'system'")
            turns.append({"system": system, **turn} if system else turn)
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            turns.append({"input": text(item[0], "a history question"), "output": text(item[1], "a history answer")})
        else:
            raise RowSkipped("history entries must be [question, answer] pairs or turn objects")
    return turns


def build_columns_map_fn(columns: dict) -> MapFn:
    """A map function from ``{role: column}`` with roles system / input / output / history (or text).

    ``history`` holds earlier turns ([[q, a], ...] as LLaMA-Factory writes it, turn objects, or
    chat messages); when the row has no ``output`` column the history alone is the conversation,
    and the input/output/system names are looked up inside each history object. ``text`` alone
    maps a column of plain text for pre-training (no template, no EOS).

    Before (columns={"input": "q", "output": "a", "history": "h"}):
            {"q": "And 3+3?", "a": "6", "h": [["2+2?", "4"]]}
    After:  {"conversation": [{"input": "2+2?", "output": "4"}, {"input": "And 3+3?", "output": "6"}]}
    """
    columns = {k: v for k, v in dict(columns or {}).items() if v}
    unknown = [k for k in columns if k not in ROLES]
    if unknown:
        raise UserError(f"unknown column role(s) {', '.join(unknown)}.",
                        "Roles are system, input, output and history, e.g. --columns input=q,output=a.",
                        field="data.columns")
    if "text" in columns:
        if len(columns) > 1:
            raise UserError("the text role (plain pre-training text) cannot be combined with other roles.",
                            "Use --columns text=COLUMN alone, or input/output/system/history.", field="data.columns")
        column = columns["text"]

        def text_map_fn(row: dict) -> dict:
            return {"conversation": [{"input": "", "output": text(row.get(column), f"'{column}'").strip(),
                                      "need_eos_token": False}]}

        text_map_fn.__doc__ = build_columns_map_fn.__doc__
        return MapFn("columns", text_map_fn, (column,), f"pre-training text from column {column}", pretrain=True)
    if "output" not in columns and "history" not in columns:
        raise UserError("the column mapping needs an output column (or a history column).",
                        "Example: --columns input=question,output=answer.", field="data.columns")
    required = (columns["history"],) if "history" in columns else tuple(
        columns[r].split("+")[0] for r in ("input", "output") if r in columns)

    def columns_map_fn(row: dict) -> dict:
        turns = _history_turns(row.get(columns["history"]), columns) if "history" in columns else []
        out_col = columns.get("output")
        if out_col and out_col in row:
            turn = {"input": _joined_input(row, columns.get("input", "")),
                    "output": text(row[out_col], f"'{out_col}'")}
            turns.append(turn)
        has_system = "system" in columns and columns["system"] in row
        system = text(row.get(columns["system"]), f"'{columns['system']}'") if has_system else ""
        if system and turns and not turns[0].get("system"):
            turns[0] = {"system": system, **turns[0]}
        if not turns:
            raise RowSkipped("no turns in the mapped columns")
        return {"conversation": turns}

    columns_map_fn.__doc__ = build_columns_map_fn.__doc__
    summary = ", ".join(f"{role}={col}" for role, col in columns.items())
    return MapFn("columns", columns_map_fn, required, f"column mapping ({summary})",
                 tuple(c for r, c in columns.items() if c not in required))


def _joined_input(row: dict, spec: str) -> str:
    """The user's message from one column, or several joined by ``+`` (``instruction+input``, as Alpaca
    files split it), each non-empty part on its own line."""
    parts = [text(row.get(c, ""), f"'{c}'") for c in spec.split("+") if c] if spec else []
    return "\n".join(p for p in parts if p)


# Generic (question, answer) pairs: a plain one-turn conversation (map_fn "columns"), no system prompt.
GENERIC_PAIRS: tuple[tuple[str, str], ...] = (
    ("instruction", "output"), ("instruction", "response"), ("question", "answer"), ("question", "response"),
    ("prompt", "response"), ("prompt", "completion"), ("query", "response"), ("query", "answer"),
    ("input", "output"), ("input", "target"), ("input", "response"), ("prompt", "answer"), ("question", "output"),
)


def suggest_columns(column_names) -> dict:
    """The column mapping for generic columns ({} for any other layout).

    >>> suggest_columns(["question", "answer"])
    {'input': 'question', 'output': 'answer'}
    >>> suggest_columns(["instruction", "input", "output", "history"])
    {'input': 'instruction+input', 'output': 'output', 'history': 'history'}
    """
    present = list(column_names)
    for question, answer in GENERIC_PAIRS:
        if question in present and answer in present:
            extra = "input" if question == "instruction" and "input" in present else ""
            mapping = {"input": f"{question}+{extra}" if extra else question, "output": answer}
            mapping.update({role: role for role in ("system", "history") if role in present})
            return mapping
    return {}
