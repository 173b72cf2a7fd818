"""Multi-turn formats: message lists (OpenAI, ShareGPT, WizardLM, LLaVA), Guanaco text and XTuner's own
conversation format, with the message parsing they share."""

from __future__ import annotations

import ast
import json

from tunesmith.core.data.map_fns.base import RowSkipped, as_list, text
from tunesmith.core.data.map_fns.base import column as _col
from tunesmith.core.data.map_fns.base import optional as _opt


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
