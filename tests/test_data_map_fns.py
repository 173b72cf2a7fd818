"""Every map_fn with a literal row and its literal conversation (XTuner column semantics)."""

from __future__ import annotations

import pytest

from tunesmith.core.data.map_fns import MAP_FNS, RowSkipped, check_columns, get_map_fn, make_columns_map_fn, suggest_map_fn
from tunesmith.core.data.map_fns import parse_columns_arg
from tunesmith.core.data.templates import SYSTEM_TEMPLATES as S
from tunesmith.core.errors import DataError, UserError

CASES = {
    "alpaca": ({"instruction": "Add 2 and 3.", "input": "", "output": "5"},
               [{"input": "Add 2 and 3.\n", "output": "5"}]),
    "alpaca_zh": ({"instruction_zh": "翻译", "input_zh": "cat", "output_zh": "猫"},
                  [{"input": "翻译\ncat", "output": "猫"}]),
    "arxiv": ({"abstract": "We study X.", "title": "On X"},
              [{"system": S["arxiv_gentile"], "input": "We study X.", "output": "On X"}]),
    "code_alpaca": ({"prompt": "Reverse a list", "completion": "xs[::-1]"},
                    [{"system": S["coder"], "input": "Reverse a list", "output": "xs[::-1]"}]),
    "colors": ({"description": "Sky: a calm: light blue.", "color": "#87ceeb"},
               [{"system": S["colorist"], "input": "a calm: light blue.", "output": "#87ceeb"}]),
    "crime_kg_assistant": ({"input": "盗窃罪如何量刑？", "output": "依据刑法……"},
                           [{"system": S["lawyer"], "input": "盗窃罪如何量刑？", "output": "依据刑法……"}]),
    "default": ({"input": "Hi", "output": "Hello!"}, [{"input": "Hi", "output": "Hello!"}]),
    "law_reference": ({"question": "什么是合同？", "answer": "合同是……"},
                      [{"system": S["lawyer"], "input": "什么是合同？", "output": "合同是……"}]),
    "medical": ({"instruction": "头痛怎么办？", "input": "三天了", "output": "建议就医。"},
                [{"system": S["medical"], "input": "头痛怎么办？\n三天了", "output": "建议就医。"}]),
    "oasst1": ({"text": "### Human: Hi### Assistant: Hello!### Human: More?### Assistant: Sure.### Human: Bye"},
               [{"input": "Hi", "output": "Hello!"}, {"input": "More?", "output": "Sure."}]),
    "openai": ({"messages": [{"role": "assistant", "content": "skipped"}, {"role": "system", "content": "Be kind."},
                             {"role": "user", "content": "Hi"}, {"role": "user", "content": " there"},
                             {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
                             {"role": "assistant", "content": "Bye!", "loss": "False"}]},
               [{"system": "Be kind.", "input": "Hi there", "output": "Hello!", "output_with_loss": True},
                {"system": "", "input": "Bye", "output": "Bye!", "output_with_loss": False}]),
    "openorca": ({"system_prompt": "Be brief.", "question": "2+2?", "response": "4"},
                 [{"system": "Be brief.", "input": "2+2?", "output": "4"}]),
    "pretrain": ({"text": "  The sky is blue.\n"}, [{"input": "", "output": "The sky is blue.", "need_eos_token": False}]),
    "sql": ({"context": "CREATE TABLE t (a INT)", "question": "Count rows", "answer": "SELECT COUNT(*) FROM t"},
            [{"system": S["sql"], "input": "CREATE TABLE t (a INT)\nCount rows", "output": "SELECT COUNT(*) FROM t"}]),
    "stack_exchange": ({"question": "How to exit vim?", "response": ":q"}, [{"input": "How to exit vim?", "output": ":q"}]),
    "tiny_codes": ({"prompt": "Print hi in Python", "response": "print('hi')"},
                   [{"system": S["coder"], "input": "Print hi in Python", "output": "print('hi')"}]),
    "wizardlm": ({"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "Hi"},
                                    {"from": "gpt", "value": "Hello!"}, {"from": "human", "value": "Thanks"}]},
                 [{"input": "Hi", "output": "Hello!"}]),
    "llava": ({"conversations": [{"from": "human", "value": "What is this?\n<image>"}, {"from": "gpt", "value": "A cat."},
                                 {"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Grey."}]},
              [{"input": "<image>\nWhat is this?", "output": "A cat."}, {"input": "Colour?", "output": "Grey."}]),
    "sharegpt": ({"system": "Be kind.", "conversations": [
                     {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
                     {"from": "human", "value": "Weather?"}, {"from": "function_call", "value": "{\"name\": \"w\"}"},
                     {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "It is sunny."}]},
                 [{"system": "Be kind.", "input": "Hi", "output": "Hello!"},
                  {"input": "Weather?", "output": "{\"name\": \"w\"}"}, {"input": "sunny", "output": "It is sunny."}]),
    "standard": ({"conversation": [{"system": "S", "input": "Q", "output": "A", "extra": None}]},
                 [{"system": "S", "input": "Q", "output": "A"}]),
}


def test_every_map_fn_has_a_case_and_a_before_after_docstring():
    assert set(CASES) | {"msagent_react"} == set(MAP_FNS)
    for m in MAP_FNS.values():
        assert "Before" in m.doc and "After" in m.doc, m.name


@pytest.mark.parametrize("name", sorted(CASES))
def test_map_fn_literal(name):
    row, expected = CASES[name]
    assert MAP_FNS[name](row)["conversation"] == expected


def test_msagent_react():
    row = {"conversations": [
        {"from": "system", "value": 'tools: {"name": "weather", "description": "get the weather"}'},
        {"from": "user", "value": "Weather in Paris?"},
        {"from": "assistant", "value": 'Let me check.<|startofthink|>```JSON\n{"api_name": "weather", "parameters": '
                                       '{"city": "Paris"}}\n```<|endofthink|><|startofexec|>```JSON\n{"sky": "sunny"}\n'
                                       '```<|endofexec|>It is sunny.'}]}
    conv = MAP_FNS["msagent_react"](row)["conversation"]
    assert conv[0]["system"].startswith("你是一个可以调用外部工具的助手，可以使用的工具包括：\n{'weather': 'get the weather'}\n")
    assert "你的工具必须从 [['weather']] 选择" in conv[0]["system"] and conv[0]["system"].endswith("开始!\n")
    assert conv[0]["input"] == "Weather in Paris?\n"
    assert conv[0]["output"] == "Thought:Let me check.\nAction:weather\nAction Input:{'city': 'Paris'}\n\n"
    assert conv[1] == {"system": "Response:{'sky': 'sunny'}\n", "input": "", "output": "Final Answer:It is sunny.\n"}
    plain = {"conversations": str([{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "Hello"}])}
    assert MAP_FNS["msagent_react"](plain)["conversation"] == [{"system": "", "input": "Hi\n", "output": "Final Answer:Hello\n"}]


def test_row_problems_raise_row_skipped():
    with pytest.raises(RowSkipped, match="<nooutput>"):
        MAP_FNS["alpaca"]({"instruction": "x", "input": "", "output": "<nooutput>"})
    with pytest.raises(RowSkipped, match="ends on a user turn"):
        MAP_FNS["openai"]({"messages": [{"role": "user", "content": "Hi"}]})
    with pytest.raises(RowSkipped, match="unknown role 'robot'"):
        MAP_FNS["sharegpt"]({"conversations": [{"from": "robot", "value": "Hi"}]})
    with pytest.raises(RowSkipped, match="alternate"):
        MAP_FNS["wizardlm"]({"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]})
    out = MAP_FNS["openai"]({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
                                          {"role": "user", "content": "dangling"}]})
    assert out["trailing_user_turn"] and len(out["conversation"]) == 1


def test_openai_accepts_json_strings_and_pretrain_role():
    row = {"messages": '[{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A", "loss": false}]'}
    assert MAP_FNS["openai"](row)["conversation"] == [{"system": "", "input": "Q", "output": "A", "output_with_loss": False}]
    row = {"messages": [{"role": "pretrain", "content": "Raw text.\n"}]}
    assert MAP_FNS["openai"](row)["conversation"] == [{"input": "", "output": "Raw text.\n", "need_eos_token": False}]


def test_columns_map_fn_variants():
    fn = make_columns_map_fn({"input": "q", "output": "a", "system": "s", "history": "h"})
    row = {"q": "And 3+3?", "a": "6", "s": "Math.", "h": [["2+2?", "4"]]}
    assert fn(row)["conversation"] == [{"system": "Math.", "input": "2+2?", "output": "4"}, {"input": "And 3+3?", "output": "6"}]
    # history of turn objects whose keys are the mapped names (XTuner's multi_turn demo layout)
    fn = make_columns_map_fn({"history": "messages", "system": "toy_system", "input": "toy_input", "output": "toy_output"})
    row = {"messages": [{"toy_system": "S", "toy_input": "Q1", "toy_output": "A1"},
                        {"toy_input": "Q2", "toy_output": "A2", "toy_system": None}]}
    assert fn(row)["conversation"] == [{"system": "S", "input": "Q1", "output": "A1"}, {"input": "Q2", "output": "A2"}]
    assert fn.required == ("messages",)
    # history as chat messages
    fn = make_columns_map_fn({"history": "chat"})
    row = {"chat": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    assert fn(row)["conversation"] == [{"system": "", "input": "Q", "output": "A", "output_with_loss": True}]
    fn = make_columns_map_fn({"input": "question", "output": "answer"})
    assert fn({"question": "Q", "answer": "A"})["conversation"] == [{"input": "Q", "output": "A"}]
    assert get_map_fn("columns", {"output": "answer"}).required == ("answer",)
    with pytest.raises(UserError, match="unknown column role"):
        make_columns_map_fn({"prompt": "q", "output": "a"})
    with pytest.raises(UserError, match="needs an output column"):
        make_columns_map_fn({"input": "q"})
    assert parse_columns_arg("input=q, output=a") == {"input": "q", "output": "a"}
    with pytest.raises(UserError, match="ROLE=COLUMN"):
        parse_columns_arg("input")


@pytest.mark.parametrize("columns,first,expected", [
    (["messages"], None, "openai"), (["conversations", "system"], None, "sharegpt"),
    (["conversation"], None, "standard"), (["instruction", "input", "output"], None, "columns"),
    (["instruction", "input", "output", "history"], None, "columns"),
    (["instruction_zh", "input_zh", "output_zh"], None, "alpaca_zh"), (["description", "color"], None, "colors"),
    (["abstract", "title"], None, "arxiv"), (["prompt", "completion"], None, "columns"),
    (["system_prompt", "question", "response", "id"], None, "openorca"), (["context", "question", "answer"], None, "sql"),
    # generic columns: a plain conversation (map_fn columns), never a domain map_fn with its system prompt
    (["question", "response"], None, "columns"), (["question", "answer"], None, "columns"),
    (["prompt", "response"], None, "columns"), (["input", "output"], None, "columns"), (["text"], None, "pretrain"),
    (["text"], {"text": "### Human: Hi### Assistant: Yo"}, "oasst1"), (["a", "b"], None, None),
])
def test_suggest_map_fn(columns, first, expected):
    assert suggest_map_fn(columns, first) == expected


def test_wrong_columns_name_missing_and_present():
    with pytest.raises(DataError) as err:
        check_columns(MAP_FNS["alpaca"], ["question", "answer"], "qa.json")
    msg = str(err.value)
    assert "qa.json: map_fn 'alpaca' needs column(s) instruction, output" in msg
    assert "Columns present: question, answer." in msg and "--columns input=question,output=answer" in msg
    check_columns(MAP_FNS["alpaca"], ["instruction", "output"])  # input is optional


def test_unknown_map_fn_and_aliases():
    assert get_map_fn("crime_kg_assitant").name == "crime_kg_assistant"  # XTuner's spelling
    with pytest.raises(UserError, match="Did you mean: alpaca"):
        get_map_fn("alpacca")
