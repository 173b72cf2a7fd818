"""Map functions: one dataset row -> XTuner's standard ``{"conversation": [turn, ...]}``.

A turn is ``{"system": str, "input": str, "output": str}`` plus, where a format says so,
``output_with_loss`` (False masks that answer) and ``need_eos_token`` (False: no EOS after it).
Column semantics follow XTuner's ``dataset_map_fns`` one for one; ``sharegpt``, ``standard``
and the column mapping (:func:`make_columns_map_fn`) are ours.

A row that cannot become a conversation raises :class:`RowSkipped` with a reason; the pipeline
drops it and counts the reason. Wrong columns for the whole file are caught before mapping by
:func:`check_columns`.
"""

from __future__ import annotations

import ast
import json

from core.data.map_fns_agent import msagent_react_map_fn
from core.data.map_fns_base import MapFn, RowSkipped, as_list, text
from core.data.templates import SYSTEM_TEMPLATES
from core.errors import DataError, UserError, close_matches

__all__ = ["MAP_FNS", "MapFn", "RowSkipped", "check_columns", "get_map_fn", "make_columns_map_fn", "suggest_map_fn"]


def _col(row: dict, name: str) -> str:
    return text(row[name], f"'{name}'")


def _opt(row: dict, name: str) -> str:
    return text(row.get(name), f"'{name}'")


def _one(system: str, inp, out) -> dict:
    turn = {"input": text(inp, "the question"), "output": text(out, "the answer")}
    return {"conversation": [{"system": system, **turn} if system else turn]}


def alpaca_map_fn(row: dict) -> dict:
    """Alpaca: ``instruction`` + ``input`` -> input, ``output`` -> output, system = alpaca.

    Before: {"instruction": "Add 2 and 3.", "input": "", "output": "5"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["alpaca"], "input": "Add 2 and 3.\\n", "output": "5"}]}
    Rows whose output is ``<nooutput>`` are dropped, as XTuner does.
    """
    if row.get("output") == "<nooutput>":
        raise RowSkipped("output is <nooutput>")
    return _one(SYSTEM_TEMPLATES["alpaca"], f"{_col(row, 'instruction')}\n{_opt(row, 'input')}", row["output"])


def alpaca_zh_map_fn(row: dict) -> dict:
    """Chinese Alpaca: ``instruction_zh`` + ``input_zh`` -> input, ``output_zh`` -> output, system = alpaca.

    Before: {"instruction_zh": "翻译", "input_zh": "cat", "output_zh": "猫"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["alpaca"], "input": "翻译\\ncat", "output": "猫"}]}
    """
    return _one(SYSTEM_TEMPLATES["alpaca"], f"{_col(row, 'instruction_zh')}\n{_opt(row, 'input_zh')}",
                row["output_zh"])


def arxiv_map_fn(row: dict) -> dict:
    """arXiv titles: ``abstract`` -> input, ``title`` -> output, system = arxiv_gentile.

    Before: {"abstract": "We study X.", "title": "On X"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["arxiv_gentile"], "input": "We study X.", "output": "On X"}]}
    """
    return _one(SYSTEM_TEMPLATES["arxiv_gentile"], row["abstract"], row["title"])


def code_alpaca_map_fn(row: dict) -> dict:
    """Code Alpaca: ``prompt`` -> input, ``completion`` -> output, system = coder.

    Before: {"prompt": "Reverse a list", "completion": "xs[::-1]"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["coder"], "input": "Reverse a list", "output": "xs[::-1]"}]}
    """
    return _one(SYSTEM_TEMPLATES["coder"], row["prompt"], row["completion"])


def colors_map_fn(row: dict) -> dict:
    """Colorist: the text after the first ':' of ``description`` -> input, ``color`` -> output, system = colorist.

    Before: {"description": "Sky: a calm light blue.", "color": "#87ceeb"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["colorist"], "input": "a calm light blue.",
                               "output": "#87ceeb"}]}
    """
    desc = ":".join(_col(row, "description").split(":")[1:]).strip()
    return _one(SYSTEM_TEMPLATES["colorist"], desc, row["color"])


def crime_kg_assistant_map_fn(row: dict) -> dict:
    """Crime KG assistant: ``input`` / ``output``, system = lawyer.

    Before: {"input": "盗窃罪如何量刑？", "output": "依据刑法……"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["lawyer"], "input": "盗窃罪如何量刑？", "output": "依据刑法……"}]}
    """
    return _one(SYSTEM_TEMPLATES["lawyer"], row["input"], row["output"])


def default_map_fn(row: dict) -> dict:
    """Plain pairs: ``input`` / ``output``, no system.

    Before: {"input": "Hi", "output": "Hello!"}
    After:  {"conversation": [{"input": "Hi", "output": "Hello!"}]}
    """
    return _one("", row["input"], row["output"])


def law_reference_map_fn(row: dict) -> dict:
    """Law reference: ``question`` -> input, ``answer`` -> output, system = lawyer.

    Before: {"question": "什么是合同？", "answer": "合同是……"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["lawyer"], "input": "什么是合同？", "output": "合同是……"}]}
    """
    return _one(SYSTEM_TEMPLATES["lawyer"], row["question"], row["answer"])


def medical_map_fn(row: dict) -> dict:
    """Medical: ``instruction`` + ``input`` -> input, ``output`` -> output, system = medical.

    Before: {"instruction": "头痛怎么办？", "input": "三天了", "output": "建议就医。"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["medical"], "input": "头痛怎么办？\\n三天了", "output": "建议就医。"}]}
    """
    return _one(SYSTEM_TEMPLATES["medical"], f"{_col(row, 'instruction')}\n{_opt(row, 'input')}", row["output"])


def openorca_map_fn(row: dict) -> dict:
    """OpenOrca: ``system_prompt`` -> system, ``question`` -> input, ``response`` -> output.

    Before: {"system_prompt": "Be brief.", "question": "2+2?", "response": "4"}
    After:  {"conversation": [{"system": "Be brief.", "input": "2+2?", "output": "4"}]}
    """
    return _one(_opt(row, "system_prompt"), row["question"], row["response"])


def pretrain_map_fn(row: dict) -> dict:
    """Pre-training text: ``text`` (stripped) -> output, no input, no EOS, no template.

    Before: {"text": "  The sky is blue.\\n"}
    After:  {"conversation": [{"input": "", "output": "The sky is blue.", "need_eos_token": False}]}
    """
    return {"conversation": [{"input": "", "output": _col(row, "text").strip(), "need_eos_token": False}]}


def sql_map_fn(row: dict) -> dict:
    """SQL: ``context`` + ``question`` -> input, ``answer`` -> output, system = sql.

    Before: {"context": "CREATE TABLE t (a INT)", "question": "Count rows", "answer": "SELECT COUNT(*) FROM t"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["sql"], "input": "CREATE TABLE t (a INT)\\nCount rows",
                               "output": "SELECT COUNT(*) FROM t"}]}
    """
    return _one(SYSTEM_TEMPLATES["sql"], f"{_col(row, 'context')}\n{_col(row, 'question')}", row["answer"])


def stack_exchange_map_fn(row: dict) -> dict:
    """Stack Exchange: ``question`` / ``response``, no system.

    Before: {"question": "How to exit vim?", "response": ":q"}
    After:  {"conversation": [{"input": "How to exit vim?", "output": ":q"}]}
    """
    return _one("", row["question"], row["response"])


def tiny_codes_map_fn(row: dict) -> dict:
    """Tiny codes: ``prompt`` / ``response``, system = coder.

    Before: {"prompt": "Print hi in Python", "response": "print('hi')"}
    After:  {"conversation": [{"system": SYSTEM_TEMPLATES["coder"], "input": "Print hi in Python",
                               "output": "print('hi')"}]}
    """
    return _one(SYSTEM_TEMPLATES["coder"], row["prompt"], row["response"])


def _parse_messages(value, column: str) -> list:
    """A list of messages, also from a JSON or Python-literal string (CSV files store them so)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise RowSkipped(f"'{column}' is text, not a list of messages") from None
    items = as_list(value)
    if not all(isinstance(m, dict) for m in items):
        raise RowSkipped(f"'{column}' holds something other than message objects")
    return items


def _message_text(msg: dict, key: str, role) -> str:
    """A message's text; a message without it is dropped with its row rather than becoming an empty turn
    (a missing 'content' is a broken export, not a deliberate empty message)."""
    if msg.get(key) is None:
        raise RowSkipped(f"a '{role}' message has no '{key}'")
    return text(msg[key], f"a message's '{key}'")


def _finish(conversation: list, pending_user: str, column: str) -> dict:
    if not conversation:
        raise RowSkipped("conversation ends on a user turn (no answer)" if pending_user
                         else f"no assistant message in '{column}'")
    out = {"conversation": conversation}
    if pending_user:
        out["trailing_user_turn"] = True  # dropped as XTuner does; the pipeline counts it
    return out


def _loss_flag(value) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def openai_map_fn(row: dict) -> dict:
    """OpenAI messages: ``messages`` [{role, content, loss?}] -> multi-turn.

    A system message attaches to the next answer, consecutive user messages are joined, leading
    assistant messages are skipped and an assistant ``loss`` of false (bool or "False") masks
    that answer. ``tool`` messages count as user text; XTuner V1's ``pretrain`` role becomes a
    turn with no input and no EOS.

    Before: {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
                          {"role": "assistant", "content": "Bye!", "loss": False}]}
    After:  {"conversation": [{"system": "Be kind.", "input": "Hi", "output": "Hello!", "output_with_loss": True},
                              {"system": "", "input": "Bye", "output": "Bye!", "output_with_loss": False}]}
    """
    messages = _parse_messages(row["messages"], "messages")
    while messages and messages[0].get("role") == "assistant":
        messages = messages[1:]
    conversation, system, pending = [], "", ""
    for msg in messages:
        role = msg.get("role")
        content = _message_text(msg, "content", role)
        if role == "system":
            system = content
        elif role in ("user", "tool"):
            pending += content
        elif role == "assistant":
            conversation.append({"system": system, "input": pending, "output": content,
                                 "output_with_loss": _loss_flag(msg.get("loss"))})
            system, pending = "", ""
        elif role == "pretrain":
            conversation.append({"input": "", "output": content, "need_eos_token": False})
        else:
            raise RowSkipped(f"unknown role '{role}' in 'messages'")
    return _finish(conversation, pending, "messages")


SHAREGPT_USER = ("human", "user", "observation", "tool", "function")
SHAREGPT_ASSISTANT = ("gpt", "assistant", "function_call", "chatgpt", "bard", "bing", "model")


def sharegpt_map_fn(row: dict) -> dict:
    """ShareGPT: ``conversations`` [{from, value}] -> multi-turn; optional row ``system`` column.

    Roles human/user (and tool results: observation/tool/function) are the user side, gpt/assistant
    (and function_call) the answers, system attaches to the next answer. Consecutive user messages
    are joined with a newline; leading answers are skipped; a trailing question is dropped.

    Before: {"system": "Be kind.",
             "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
    After:  {"conversation": [{"system": "Be kind.", "input": "Hi", "output": "Hello!"}]}
    """
    messages = _parse_messages(row["conversations"], "conversations")
    system, pending, conversation = _opt(row, "system"), [], []
    for msg in messages:
        role = text(msg.get("from", msg.get("role")), "a message's 'from'").lower()
        value = _message_text(msg, "value" if msg.get("value") is not None or msg.get("content") is None else "content",
                              role)
        if role == "system":
            system = value
        elif role in SHAREGPT_USER:
            pending.append(value)
        elif role in SHAREGPT_ASSISTANT:
            if not conversation and not pending:
                continue  # an answer before any question
            turn = {"input": "\n".join(pending), "output": value}
            conversation.append({"system": system, **turn} if system else turn)
            system, pending = "", []
        else:
            raise RowSkipped(f"unknown role '{role}' in 'conversations'")
    return _finish(conversation, "\n".join(pending), "conversations")


def _human_gpt_pairs(row: dict, column: str) -> list[tuple[str, dict]]:
    messages = _parse_messages(row[column], column)
    return [(text(m.get("from")).lower(), m) for m in messages]


def wizardlm_map_fn(row: dict) -> dict:
    """WizardLM: ``conversations`` [{from: human|gpt, value}] strictly alternating -> multi-turn.

    Leading non-human messages are skipped and a trailing unanswered question is dropped.

    Before: {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
                               {"from": "human", "value": "Thanks"}]}
    After:  {"conversation": [{"input": "Hi", "output": "Hello!"}]}
    """
    data = _human_gpt_pairs(row, "conversations")
    while data and data[0][0] != "human":
        data = data[1:]
    trailing = len(data) % 2 == 1
    if trailing:
        data = data[:-1]
    conversation = []
    for (r1, m1), (r2, m2) in zip(data[0::2], data[1::2]):
        if r1 != "human" or r2 != "gpt":
            raise RowSkipped("wizardlm conversations must alternate human / gpt")
        conversation.append({"input": text(m1.get("value"), "a message's 'value'"),
                             "output": text(m2.get("value"), "a message's 'value'")})
    return _finish(conversation, "?" if trailing else "", "conversations")


def llava_map_fn(row: dict) -> dict:
    """LLaVA (text side): ``conversations`` [{from: human|gpt, value}] -> multi-turn.

    ``<image>`` in a question moves to its front as ``"<image>\\n" + text``; consecutive questions
    are joined; leading gpt messages are skipped.

    Before: {"conversations": [{"from": "human", "value": "What is this?\\n<image>"},
                               {"from": "gpt", "value": "A cat."}]}
    After:  {"conversation": [{"input": "<image>\\nWhat is this?", "output": "A cat."}]}
    """
    data = _human_gpt_pairs(row, "conversations")
    while data and data[0][0] == "gpt":
        data = data[1:]
    conversation, pending = [], ""
    for role, msg in data:
        value = text(msg.get("value"), "a message's 'value'")
        if role == "human":
            if "<image>" in value:
                value = ("<image>\n" + value.replace("<image>", "").strip()).strip()
            pending += value
        elif role == "gpt":
            conversation.append({"input": pending, "output": value})
            pending = ""
        else:
            raise RowSkipped(f"unknown role '{role}' in 'conversations'")
    return _finish(conversation, pending, "conversations")


def oasst1_map_fn(row: dict) -> dict:
    """OpenAssistant (Guanaco style): ``text`` split on ``###`` into Human/Assistant pairs.

    Before: {"text": "### Human: Hi### Assistant: Hello!### Human: Bye"}
    After:  {"conversation": [{"input": "Hi", "output": "Hello!"}]}
    """
    parts = []
    for piece in _col(row, "text").strip().split("###"):
        piece = piece.strip()
        if piece.startswith("Human:"):
            parts.append(piece[len("Human:"):].strip())
        elif piece.startswith("Assistant:"):
            parts.append(piece[len("Assistant:"):].strip())
    trailing = len(parts) % 2 == 1
    if trailing:
        parts.pop()
    conversation = [{"input": q, "output": a} for q, a in zip(parts[0::2], parts[1::2])]
    return _finish(conversation, "?" if trailing else "", "text")


def standard_map_fn(row: dict) -> dict:
    """Already XTuner's format: ``conversation`` [{system?, input, output, ...}] is kept as it is.

    Before: {"conversation": [{"system": "S", "input": "Q", "output": "A"}]}
    After:  {"conversation": [{"system": "S", "input": "Q", "output": "A"}]}
    """
    conversation = []
    for turn in _parse_messages(row["conversation"], "conversation"):
        clean = {k: v for k, v in turn.items() if v is not None}
        for key in ("system", "input", "output"):
            if key in clean:
                clean[key] = text(clean[key], f"a turn's '{key}'")
        conversation.append(clean)
    if not conversation:
        raise RowSkipped("empty 'conversation'")
    return {"conversation": conversation}


def _m(name, fn, required, summary, optional=()):
    return MapFn(name, fn, tuple(required), summary, tuple(optional), pretrain=(name == "pretrain"))


MAP_FNS: dict[str, MapFn] = {m.name: m for m in (
    _m("alpaca", alpaca_map_fn, ["instruction", "output"], "instruction+input -> output (alpaca system)", ["input"]),
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
COLUMNS = "columns"


def get_map_fn(name: str, columns: dict | None = None) -> MapFn:
    """The map function called ``name`` (``columns`` builds the column mapping)."""
    if name == COLUMNS:
        return make_columns_map_fn(columns or {})
    name = ALIASES.get(name, name)
    if name not in MAP_FNS:
        raise UserError(f"unknown map_fn '{name}'.", close_matches(str(name), list(MAP_FNS) + [COLUMNS])
                        + " See `python -m core list-map-fns`.", field="data.map_fn")
    return MAP_FNS[name]


def make_columns_map_fn(columns: dict) -> MapFn:
    """A map function from a column mapping {system, input, output, history} (see map_fns_columns)."""
    from core.data.map_fns_columns import build_columns_map_fn

    return build_columns_map_fn(columns)


def suggest_map_fn(column_names, first_row: dict | None = None) -> str | None:
    """The map_fn that fits these columns, or None (see map_fns_columns.suggest)."""
    from core.data.map_fns_columns import suggest

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
        from core.data.map_fns_columns import suggest_columns

        spec = ",".join(f"{role}={col}" for role, col in suggest_columns(present).items())
        fix = f"Map these columns: map_fn columns with --columns {spec}."
    else:
        fix = (f"Use map_fn '{suggestion}' (it fits these columns)" if suggestion and suggestion != map_fn.name
               else "Choose the map_fn that matches the file")
        fix += ", or map columns by hand, e.g. --columns input=question,output=answer."
    raise DataError(f"{where}map_fn '{map_fn.name}' needs column(s) {', '.join(missing)}, which the data does not "
                    f"have. Columns present: {', '.join(present) or '(none)'}.", fix)
