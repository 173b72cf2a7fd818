"""build_sft_data end to end on small files: drops and their reasons, packing, eval split, errors."""

from __future__ import annotations

import json

import pytest

from tunesmith.core.config import DataConfig
from tunesmith.core.data.pipeline import build_sft_data
from tunesmith.core.errors import ConfigError, DataError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def msgs(*pairs, system=None):
    out = [{"role": "system", "content": system}] if system else []
    for q, a in pairs:
        out.append({"role": "user", "content": q})
        if a is not None:
            out.append({"role": "assistant", "content": a})
    return {"messages": out}


@pytest.fixture()
def mixed_file(tmp_path):
    rows = [msgs(("Hi", "Hello!")),                       # 0 ok
            msgs(("Q", "")),                               # 1 empty answer -> dropped
            msgs(("Q1", "A1"), ("Q2", None)),              # 2 trailing user turn removed, kept
            msgs(("only a question", None)),               # 3 ends on a user turn -> dropped
            msgs(("Who are you?", "I am Melody."), system="Be kind."),  # 4 ok
            msgs(("Bye", "Ciao"))]                         # 5 ok
    return write_jsonl(tmp_path / "mixed.jsonl", rows)


def test_drops_are_counted_with_reasons(tokenizer, mixed_file):
    built = build_sft_data(DataConfig(path=mixed_file, template="internlm2_chat", pack=False), tokenizer)
    s = built.stats
    assert (s.rows, s.kept) == (6, 4)
    assert s.dropped == {"empty answer": 1, "conversation ends on a user turn (no answer)": 1}
    assert s.drop_examples == {"empty answer": 1, "conversation ends on a user turn (no answer)": 3}
    assert s.notes == {"trailing user turn without an answer removed": 1}
    assert built.template == "internlm2_chat" and s.map_fn == "openai"
    assert built.train.num_rows == 4 and s.sequences == 4
    row = built.train[0]
    assert row["position_ids"] == list(range(row["length"])) and "cu_seqlens" not in row
    assert sorted(built.train["length"]) == sorted(s.lengths)
    assert s.supervised_tokens == sum(sum(1 for t in r if t != -100) for r in built.train["labels"])


def test_packing_keeps_samples_whole(tokenizer, mixed_file):
    unpacked = build_sft_data(DataConfig(path=mixed_file, template="internlm2_chat", pack=False), tokenizer).train
    packed = build_sft_data(DataConfig(path=mixed_file, template="internlm2_chat", max_length=64), tokenizer, seed=1)
    rows = packed.train
    assert packed.stats.packed and packed.stats.sequences == rows.num_rows < 4
    samples = sorted(map(tuple, unpacked["input_ids"]))
    pieces = []
    for r in rows:
        starts = [i for i, p in enumerate(r["position_ids"]) if p == 0]
        cu = starts + [len(r["input_ids"])]
        assert cu[0] == 0 and cu[-1] == r["length"] == len(r["input_ids"]) <= 64
        for a, b in zip(cu, cu[1:]):
            pieces.append(tuple(r["input_ids"][a:b]))
            assert r["position_ids"][a:b] == list(range(b - a))
    assert sorted(pieces) == samples  # every sample exactly once, never split


def test_eval_split_and_max_samples(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"input": f"q{i}", "output": f"a{i}"} for i in range(20)])
    built = build_sft_data(DataConfig(path=path, template="default", eval_size=0.25, pack=False), tokenizer)
    assert (built.stats.rows, built.eval_stats.rows, built.eval.num_rows) == (15, 5, 5)
    small = build_sft_data(DataConfig(path=path, template="default", max_samples=7, pack=False), tokenizer)
    assert small.stats.rows == 7
    with pytest.raises(ConfigError, match="eval_size"):
        build_sft_data(DataConfig(path=path, eval_size=20), tokenizer)


def test_whole_dataset_dropped_says_why(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [msgs(("Q", "")), msgs(("Q2", None))])
    with pytest.raises(DataError, match=r"all 2 row\(s\) were dropped: 1 empty answer .*1 conversation ends on a user turn"):
        build_sft_data(DataConfig(path=path, template="default"), tokenizer)


def test_truncation_drop(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "long.jsonl", [{"input": "word " * 60, "output": "yes"},
                                                 {"input": "short", "output": "fine " * 40}])
    built = build_sft_data(DataConfig(path=path, template="default", max_length=30, pack=False), tokenizer)
    assert built.stats.dropped == {"no supervised token left after truncation to max_length": 1}
    assert built.stats.truncated == 1 and built.train[0]["length"] == 30


def test_max_length_below_template_overhead(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"input": "q", "output": "a"}])
    with pytest.raises(ConfigError, match="max_length 8 is smaller than the template's own overhead: internlm2_chat puts 11"):
        build_sft_data(DataConfig(path=path, template="internlm2_chat", max_length=8), tokenizer)


def test_pretrain_text_file(tokenizer, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("First paragraph.\nStill first.\n\nSecond one.\n", encoding="utf-8")
    built = build_sft_data(DataConfig(path=str(path), pack=False), tokenizer, stage="pretrain")
    assert built.template == "" and built.stats.map_fn == "pretrain"
    first = built.train[0]
    assert tokenizer.decode(first["input_ids"]) == "<|im_start|>First paragraph.\nStill first."
    assert first["labels"][0] == -100 and first["labels"][1:] == first["input_ids"][1:]  # no EOS, all supervised


@pytest.mark.slow  # starts two worker processes
def test_worker_processes_give_the_same_samples(tokenizer, tmp_path, monkeypatch):
    """num_proc workers pickle the encoder and run the tokenising overlap each in its own process."""
    import tunesmith.core.data.pipeline as pipeline

    rows = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i} " * (i % 7 + 1)}
            for i in range(2400)] + [{"instruction": "Q", "input": "", "output": ""}]  # one dropped row
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    cfg = dict(path=str(path), map_fn="alpaca", template="internlm2_chat", max_length=256)
    one = build_sft_data(DataConfig(**cfg, num_proc=1), tokenizer)
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 8)
    assert pipeline.effective_num_proc(2, len(rows)) == 2
    two = build_sft_data(DataConfig(**cfg, num_proc=2), tokenizer)
    assert two.stats.dropped == one.stats.dropped == {"empty answer": 1}
    assert two.stats.kept == one.stats.kept == 2400
    assert two.train["input_ids"] == one.train["input_ids"] and two.train["labels"] == one.train["labels"]
