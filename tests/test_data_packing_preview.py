"""Packing with literal outputs, preview values and statistics, preference pairs."""

from __future__ import annotations

import json

import datasets
import pytest

from tunesmith.core.config import DataConfig
from tunesmith.core.data.packing import pack_dataset, plan_bins, unpacked
from tunesmith.core.data.preference import build_preference_data, to_pair
from tunesmith.core.data.preview import preview
from tunesmith.core.data.stats import DatasetStats
from tunesmith.core.errors import DataError

TOKENS = datasets.Dataset.from_dict({
    "input_ids": [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10]],
    "labels": [[-100, 2, 3], [4, 5], [-100, -100, 8, 9], [10]],
    "length": [3, 2, 4, 1],
})


def test_plan_bins_best_fit():
    assert plan_bins([3, 2, 4, 1], [0, 1, 2, 3], 6) == [[0, 1, 3], [2]]
    assert plan_bins([6, 6, 2, 2], [0, 1, 2, 3], 8) == [[0, 2], [1, 3]]
    assert plan_bins([4, 4, 4], [2, 0, 1], 4) == [[2], [0], [1]]
    with pytest.raises(ValueError):
        plan_bins([9], [0], 8)


def test_pack_literal_rows():
    rows = pack_dataset(TOKENS, 6, shuffle=False).to_list()
    assert rows == [
        {"input_ids": [1, 2, 3, 4, 5, 10], "labels": [-100, 2, 3, 4, 5, 10], "position_ids": [0, 1, 2, 0, 1, 0],
         "length": 6},
        {"input_ids": [6, 7, 8, 9], "labels": [-100, -100, 8, 9], "position_ids": [0, 1, 2, 3], "length": 4},
    ]


def test_pack_shuffles_with_seed():
    a = pack_dataset(TOKENS, 5, seed=3).to_list()
    assert a == pack_dataset(TOKENS, 5, seed=3).to_list()
    # every token of every sample is present exactly once, whatever the order
    assert sorted(t for r in a for t in r["input_ids"]) == list(range(1, 11))
    assert all(r["length"] == len(r["input_ids"]) <= 5 and r["position_ids"][0] == 0 for r in a)


def test_unpacked_literal():
    assert unpacked(TOKENS)[3] == {"input_ids": [10], "labels": [10], "position_ids": [0], "length": 1}


def test_stats_values():
    s = DatasetStats(rows=5, kept=4, lengths=[10, 20, 30, 40], truncated=1, total_tokens=100, supervised_tokens=25,
                     max_length=64, sequences=2, packed=True)
    s.add_drop("empty answer", 3)
    s.add_drop("empty answer", 4)
    d = s.to_dict()
    assert d["truncated_share"] == 0.25 and d["supervised_share"] == 0.25 and d["dropped_total"] == 2
    assert d["drop_examples"] == {"empty answer": 3} and d["dropped"] == {"empty answer": 2}
    assert d["length_summary"] == {"min": 10, "mean": 25.0, "p50": 25, "p95": 38, "max": 40}
    assert d["histogram"]["counts"] == [1, 0, 0, 1, 0, 0, 1, 0, 0, 1] and d["histogram"]["edges"][0] == 10
    assert d["packing_efficiency"] == 100 / 128
    json.dumps(d)


@pytest.fixture()
def chat_file(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]},
            {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello!"}]},
            {"messages": [{"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Ciao"}]}]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_preview_values(tokenizer, chat_file):
    p = preview(DataConfig(path=chat_file, template="internlm2_chat", max_length=2048), tokenizer, n=5)
    assert [s.index for s in p.samples] == [1, 2]
    first = p.samples[0]
    assert first.conversation == [{"system": "Be kind.", "input": "Hi", "output": "Hello!", "output_with_loss": True}]
    assert first.text == ("<|im_start|><|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                          "<|im_start|>assistant\nHello!<|im_end|>\n")
    assert first.segments == [
        ("<|im_start|><|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", False),
        ("Hello!<|im_end|>", True), ("\n", False)]
    assert first.marked().endswith("assistant\n[[Hello!<|im_end|>]]\n")
    s = p.stats
    assert (s.rows, s.kept, s.dropped) == (3, 2, {"empty answer": 1})
    assert s.lengths == [len(first.input_ids), len(p.samples[1].input_ids)]
    assert s.supervised_tokens == 3 + 3 and s.truncated == 0  # Hello ! <|im_end|>, C iao <|im_end|>
    assert p.warnings() == ["1 row(s) dropped: empty answer (first: row 0)"]
    d = p.to_dict()
    assert d["samples"][0]["segments"][1] == ["Hello!<|im_end|>", True] and d["template"] == "internlm2_chat"
    json.dumps(d)


def test_preview_system_default_and_truncation(tokenizer, chat_file):
    p = preview(DataConfig(path=chat_file, template="default", system="Short.", max_length=28), tokenizer, n=2)
    assert p.samples[0].conversation[0]["system"] == "Be kind."  # has its own
    assert p.samples[1].conversation[0]["system"] == "Short."  # got the default
    assert p.stats.truncated >= 1 and all(len(x.input_ids) <= 28 for x in p.samples)


def test_preference_pairs_xtuner_and_chat_template(tokenizer, tmp_path):
    rows = [{"prompt": "2+2?", "chosen": "4", "rejected": "5"},
            {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "user", "content": "Hi"},
                                                                       {"role": "assistant", "content": "Hello"}],
             "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away"}]},
            {"prompt": "same", "chosen": "x", "rejected": "x"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    built = build_preference_data(DataConfig(path=str(path), template="internlm2_chat"), tokenizer)
    assert built.train.to_list() == [
        {"prompt": "<|im_start|><|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", "chosen": "4<|im_end|>",
         "rejected": "5<|im_end|>"},
        {"prompt": "<|im_start|><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "chosen": "Hello<|im_end|>",
         "rejected": "Go away<|im_end|>"}]
    assert built.stats.dropped == {"chosen and rejected are identical": 1}
    chat = build_preference_data(DataConfig(path=str(path), template="chat_template", system="Be kind."), tokenizer)
    assert chat.train[0] == {"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "2+2?"}],
                             "chosen": [{"role": "assistant", "content": "4"}],
                             "rejected": [{"role": "assistant", "content": "5"}]}


def test_preference_layouts_and_errors(tokenizer, tmp_path):
    assert to_pair({"system": "S", "question": "Q", "chosen": "A", "rejected": "B"}) == (
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}], "A", "B")
    assert to_pair({"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
                    "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "B"}]}) == (
        [{"role": "user", "content": "Q"}], "A", "B")
    assert to_pair({"instruction": "Q", "input": "", "output": ["good", "bad"], "history": [["q0", "a0"]]}) == (
        [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "a0"}, {"role": "user", "content": "Q"}],
        "good", "bad")
    kto = tmp_path / "kto.jsonl"
    kto.write_text(json.dumps({"messages": [{"role": "user", "content": "Q"}], "label": True}) + "\n")
    with pytest.raises(DataError, match="looks like KTO data"):
        build_preference_data(DataConfig(path=str(kto)), tokenizer)
