"""The map_fn registry: names -> :class:`MapFn`, the column check, and the suggestion by columns.

Layering (each module imports only those before it): ``base`` -> ``formats``, ``messages``, ``agent`` ->
``columns`` (uses ``messages`` for chat-style history) -> ``suggest`` -> ``registry``.
"""

from __future__ import annotations

from tunesmith.core.data.map_fns.agent import msagent_react_map_fn
from tunesmith.core.data.map_fns.base import MapFn
from tunesmith.core.data.map_fns.columns import COLUMNS, build_columns_map_fn, suggest_columns
from tunesmith.core.data.map_fns.formats import (alpaca_map_fn, alpaca_zh_map_fn, arxiv_map_fn, code_alpaca_map_fn,
                                                 colors_map_fn, crime_kg_assistant_map_fn, default_map_fn,
                                                 law_reference_map_fn, medical_map_fn, openorca_map_fn, pretrain_map_fn,
                                                 sql_map_fn, stack_exchange_map_fn, tiny_codes_map_fn)
from tunesmith.core.data.map_fns.messages import (llava_map_fn, oasst1_map_fn, openai_map_fn, sharegpt_map_fn,
                                                  standard_map_fn, wizardlm_map_fn)
from tunesmith.core.data.map_fns.suggest import suggest
from tunesmith.core.errors import DataError, UserError, close_matches


def _m(name, fn, required, summary, optional=()):
    return MapFn(name, fn, tuple(required), summary, tuple(optional), pretrain=(name == "pretrain"))


MAP_FNS: dict[str, MapFn] = {m.name: m for m in (
    _m("alpaca", alpaca_map_fn, ["instruction", "output"], "instruction+input -> output", ["input"]),
    _m("alpaca_zh", alpaca_zh_map_fn, ["instruction_zh", "output_zh"], "Chinese alpaca columns", ["input_zh"]),
    _m("arxiv", arxiv_map_fn, ["abstract", "title"], "abstract -> title"),
    _m("code_alpaca", code_alpaca_map_fn, ["prompt", "completion"], "prompt -> completion (coder system)"),
    _m("colors", colors_map_fn, ["description", "color"], "colour description -> hex code (colorist system)"),
    _m("crime_kg_assistant", crime_kg_assistant_map_fn, ["input", "output"], "input -> output (lawyer system)"),
    _m("default", default_map_fn, ["input", "output"], "input -> output"),
    _m("law_reference", law_reference_map_fn, ["question", "answer"], "question -> answer (lawyer system)"),
    _m("medical", medical_map_fn, ["instruction", "output"], "instruction+input -> output (medical system)", ["input"]),
    _m("msagent_react", msagent_react_map_fn, ["conversations"], "MSAgent tool calls -> ReAct text"),
    _m("oasst1", oasst1_map_fn, ["text"], "'### Human: ... ### Assistant: ...' text -> multi-turn"),
    _m("openai", openai_map_fn, ["messages"], "messages [{role, content, loss?}] -> multi-turn"),
    _m("openorca", openorca_map_fn, ["question", "response"], "system_prompt, question -> response", ["system_prompt"]),
    _m("pretrain", pretrain_map_fn, ["text"], "plain text, fully supervised, no template, no EOS"),
    _m("sql", sql_map_fn, ["context", "question", "answer"], "CREATE TABLE + question -> SQL (sql system)"),
    _m("stack_exchange", stack_exchange_map_fn, ["question", "response"], "question -> response"),
    _m("tiny_codes", tiny_codes_map_fn, ["prompt", "response"], "prompt -> response (coder system)"),
    _m("wizardlm", wizardlm_map_fn, ["conversations"], "alternating human/gpt conversations"),
    _m("llava", llava_map_fn, ["conversations"], "LLaVA conversations, text side (<image> kept as text)"),
    _m("sharegpt", sharegpt_map_fn, ["conversations"], "conversations [{from, value}] (+ system column)", ["system"]),
    _m("standard", standard_map_fn, ["conversation"], "already XTuner's conversation format"),
)}
ALIASES = {"crime_kg_assitant": "crime_kg_assistant", "msagent": "msagent_react", "alpaca_en": "alpaca",
           "conversation": "standard", "messages": "openai"}


def get_map_fn(name: str, columns: dict | None = None) -> MapFn:
    """The map function called ``name`` (``columns`` builds the column mapping)."""
    if name == COLUMNS:
        return make_columns_map_fn(columns or {})
    name = ALIASES.get(name, name)
    if name not in MAP_FNS:
        raise UserError(f"unknown map_fn '{name}'.", close_matches(str(name), list(MAP_FNS) + [COLUMNS])
                        + " See `python -m tunesmith list-map-fns`.", field="data.map_fn")
    return MAP_FNS[name]


def make_columns_map_fn(columns: dict) -> MapFn:
    """A map function from a column mapping {system, input, output, history} (see map_fns.columns)."""
    return build_columns_map_fn(columns)


def suggest_map_fn(column_names, first_row: dict | None = None) -> str | None:
    """The map_fn that fits these columns, or None (see map_fns.suggest)."""
    return suggest(column_names, first_row)


def check_columns(map_fn: MapFn, column_names, path: str = "") -> None:
    """Raise a DataError naming the missing columns and the ones present."""
    present = list(column_names)
    missing = [c for c in map_fn.required if c not in present]
    if not missing:
        return
    where = f"{path}: " if path else ""
    suggestion = suggest_map_fn(present)
    if suggestion == COLUMNS:
        spec = ",".join(f"{role}={col}" for role, col in suggest_columns(present).items())
        fix = f"Map these columns: map_fn columns with --columns {spec}."
    else:
        fix = (f"Use map_fn '{suggestion}' (it fits these columns)" if suggestion and suggestion != map_fn.name
               else "Choose the map_fn that matches the file")
        fix += ", or map columns by hand, e.g. --columns input=question,output=answer."
    raise DataError(f"{where}map_fn '{map_fn.name}' needs column(s) {', '.join(missing)}, which the data does not "
                    f"have. Columns present: {', '.join(present) or '(none)'}.", fix)
