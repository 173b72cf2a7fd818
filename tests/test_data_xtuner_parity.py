"""XTuner parity of the data side (issue 10): alpaca without a system prompt, a system prompt with a template
that has no system slot (minicpm) is reported, not dropped silently."""

from __future__ import annotations

import json

from core.config import DataConfig
from core.data.map_fns import get_map_fn
from core.data.pipeline import NO_SYSTEM_SLOT_NOTE, build_sft_data
from core.data.preview import preview


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_alpaca_map_fns_set_no_system_as_xtuner():
    turn = get_map_fn("alpaca")({"instruction": "Add 2 and 3.", "input": "", "output": "5"})["conversation"][0]
    assert turn == {"input": "Add 2 and 3.\n", "output": "5"}
    zh = get_map_fn("alpaca_zh")({"instruction_zh": "翻译", "input_zh": "cat", "output_zh": "猫"})["conversation"][0]
    assert "system" not in zh


def test_a_system_prompt_with_minicpm_is_reported(tmp_path, tokenizer):
    path = _write(tmp_path / "qa.jsonl", [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(3)])
    note = NO_SYSTEM_SLOT_NOTE.format(template="minicpm")
    built = build_sft_data(DataConfig(path=path, map_fn="alpaca", template="minicpm", system="Be brief.",
                                      pack=False), tokenizer)
    assert built.stats.notes == {note: 3}
    result = preview(DataConfig(path=path, map_fn="alpaca", template="minicpm", system="Be brief."), tokenizer)
    assert any("no system slot" in w for w in result.warnings())
    # no system prompt, or a template with a system slot: nothing to say
    assert not build_sft_data(DataConfig(path=path, map_fn="alpaca", template="minicpm", pack=False),
                              tokenizer).stats.notes
    assert not build_sft_data(DataConfig(path=path, map_fn="alpaca", template="internlm2_chat", system="Be brief.",
                                         pack=False), tokenizer).stats.notes
