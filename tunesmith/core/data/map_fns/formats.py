"""One-turn formats (XTuner's ``dataset_map_fns``, column for column): one row -> one question and answer."""

from __future__ import annotations

from tunesmith.core.data.map_fns.base import column as _col
from tunesmith.core.data.map_fns.base import optional as _opt
from tunesmith.core.data.map_fns.base import RowSkipped, text
from tunesmith.core.data.templates import SYSTEM_TEMPLATES


def _one(system: str, inp, out) -> dict:
    turn = {"input": text(inp, "the question"), "output": text(out, "the answer")}
    return {"conversation": [{"system": system, **turn} if system else turn]}


def alpaca_map_fn(row: dict) -> dict:
    """Alpaca: ``instruction`` + ``input`` -> input, ``output`` -> output, no system (as XTuner 0.2.0's
    ``alpaca_map_fn``: its configs add the Alpaca system prompt only to evaluation prompts; a system prompt
    for training is the user's choice, ``data.system``).

    Before: {"instruction": "Add 2 and 3.", "input": "", "output": "5"}
    After:  {"conversation": [{"input": "Add 2 and 3.\\n", "output": "5"}]}
    Rows whose output is ``<nooutput>`` are dropped, as XTuner does.
    """
    if row.get("output") == "<nooutput>":
        raise RowSkipped("output is <nooutput>")
    return _one("", f"{_col(row, 'instruction')}\n{_opt(row, 'input')}", row["output"])


def alpaca_zh_map_fn(row: dict) -> dict:
    """Chinese Alpaca: ``instruction_zh`` + ``input_zh`` -> input, ``output_zh`` -> output, no system (as XTuner).

    Before: {"instruction_zh": "翻译", "input_zh": "cat", "output_zh": "猫"}
    After:  {"conversation": [{"input": "翻译\\ncat", "output": "猫"}]}
    """
    return _one("", f"{_col(row, 'instruction_zh')}\n{_opt(row, 'input_zh')}",
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
