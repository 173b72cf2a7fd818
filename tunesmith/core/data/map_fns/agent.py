"""MSAgent-Bench tool-use conversations -> ReAct text (XTuner's ``msagent_react_map_fn`` semantics).

Assistant messages hold tool calls as ``<|startofthink|>```JSON {...}```<|endofthink|>`` and tool
results as ``<|startofexec|>```JSON {...}```<|endofexec|> final text``. They become
``Thought:/Action:/Action Input:`` text; a tool result becomes the *system* of a follow-up turn
(masked) whose answer is the ``Final Answer:``.
"""

from __future__ import annotations

import ast
import json
import re

from tunesmith.core.data.map_fns.base import RowSkipped, text

_THINK = re.compile(r"(.*?)(<\|startofthink\|>)(.*?)(<\|endofthink\|>)", re.DOTALL)
_EXEC = re.compile(r"(<\|startofexec\|>)(.*?)(<\|endofexec\|>)(.*?)$", re.DOTALL)

# The Chinese ReAct instructions XTuner puts in the system prompt (data, kept verbatim).
_TOOLS_INTRO = "你是一个可以调用外部工具的助手，可以使用的工具包括：\n"
_REACT_RULES = (
    "如果使用工具请遵循以下格式回复：\n```\n"
    "Thought:思考你当前步骤需要解决什么问题，是否需要使用工具\n"
    "Action:工具名称，你的工具必须从 [{names}] 选择\n"
    "Action Input:工具输入参数\n```\n工具返回按照以下格式回复：\n```\n"
    "Response:调用工具后的结果\n```\n如果你已经知道了答案，或者你不需要工具，"
    "请遵循以下格式回复\n```\n"
    "Thought:给出最终答案的思考过程\n"
    "Final Answer:最终答案\n```\n开始!\n"
)


def _json_block(raw: str):
    return json.loads(raw.replace("```JSON", "").replace("```", "").replace("\n", ""))


def _think_to_react(match: re.Match) -> str:
    before = match.group(1).strip()
    call = _json_block(match.group(3))
    head = f"Thought:{before}\n" if before else ""
    return f"{head}Action:{call['api_name']}\nAction Input:{call['parameters']}\n"


def _exec_to_react(match: re.Match) -> str:
    result = _json_block(match.group(2))
    tail = match.group(4).strip()
    return f"Response:{result}\n" + (f"Final Answer:{tail}\n" if tail else "")


def _tool_descriptions(system_text: str) -> dict:
    """Every JSON object in the system text that has a name and a description -> {name: description}."""
    decoder, pos, tools = json.JSONDecoder(), 0, {}
    while True:
        start = system_text.find("{", pos)
        if start < 0:
            return tools
        try:
            obj, length = decoder.raw_decode(system_text[start:])
        except ValueError:
            pos = start + 1
            continue
        if isinstance(obj, dict) and "name" in obj and "description" in obj:
            tools[obj["name"]] = obj["description"]
            try:
                params = {p["name"]: p["description"] for p in obj["paths"][0]["parameters"]}
                tools[obj["name"]] += f"\n输入参数: {params}"
            except (KeyError, IndexError, TypeError):
                pass
            pos = start + length
        else:
            pos = start + 1


def msagent_react_map_fn(row: dict) -> dict:
    """MSAgent-Bench: ``conversations`` [{from: system|user|assistant, value}] -> ReAct turns.

    Before: {"conversations": [{"from": "system", "value": "You are an agent."},
                               {"from": "user", "value": "Weather in Paris?"},
                               {"from": "assistant", "value": "It is sunny."}]}
    After:  {"conversation": [{"system": "你是一个可以调用外部工具的助手，可以使用的工具包括：\\n{}\\n如果使用工具请遵循…开始!\\n",
                               "input": "Weather in Paris?\\n", "output": "Final Answer:It is sunny.\\n"}]}
    """
    messages = row["conversations"]
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except ValueError:
            try:
                messages = ast.literal_eval(messages)
            except (ValueError, SyntaxError):
                raise RowSkipped("'conversations' is not a list of messages") from None
    messages = list(messages or [])
    if len(messages) < 2:
        raise RowSkipped("msagent conversation has fewer than two messages")
    conversation, system_text, input_text = [], "", ""
    for msg in messages:
        role, value = text(msg.get("from")), text(msg.get("value"))
        if role == "system":
            tools = _tool_descriptions(value)
            system_text += _TOOLS_INTRO + f"{tools}\n" + _REACT_RULES.format(names=str(list(tools.keys())))
        elif role == "user":
            input_text += f"{value}\n"
        elif role == "assistant":
            output, response = value, None
            try:
                if "<|startofexec|>" in output:
                    output, response = output.split("<|startofexec|>")
                    response = "<|startofexec|>" + response
                output, n_calls = _THINK.subn(_think_to_react, output)
            except (ValueError, KeyError, TypeError):
                raise RowSkipped("msagent tool call is not valid JSON") from None
            output = f"{output}\n" if n_calls else f"Final Answer:{output}\n"
            conversation.append({"system": system_text, "input": input_text, "output": output})
            system_text, input_text = "", ""
            if response is not None:
                try:
                    response, _ = _EXEC.subn(_exec_to_react, response)
                except (ValueError, KeyError, TypeError):
                    continue
                if "Final Answer:" in response:
                    observed, answer = response.split("Final Answer:", 1)
                    conversation.append({"system": observed, "input": "", "output": "Final Answer:" + answer})
    if not conversation:
        raise RowSkipped("no assistant message in 'conversations'")
    return {"conversation": conversation}
