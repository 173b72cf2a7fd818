"""XTuner parity of the data side (issue 10): alpaca without a system prompt, a system prompt with a template
that has no system slot (minicpm) is reported, not dropped silently."""

from __future__ import annotations

import json

from tunesmith.core.config import DataConfig
from tunesmith.core.data.map_fns import get_map_fn
from tunesmith.core.data.pipeline import NO_SYSTEM_SLOT_NOTE, build_sft_data
from tunesmith.core.data.preview import preview


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


def _two_sources(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"instruction": f"q{i}", "input": "", "output": f"answer {i}"} for i in range(6)])
    b = _write(tmp_path / "b.jsonl", [{"messages": [{"role": "user", "content": f"hi {i}"},
                                                    {"role": "assistant", "content": f"hello {i}"}]} for i in range(4)]
               + [{"messages": [{"role": "user", "content": "no answer"}]}])
    return a, b


def test_several_sources_each_with_its_map_fn_are_concatenated(tmp_path, tokenizer):
    a, b = _two_sources(tmp_path)
    one_a = build_sft_data(DataConfig(path=a, map_fn="alpaca", template="internlm2_chat", pack=False), tokenizer)
    one_b = build_sft_data(DataConfig(path=b, template="internlm2_chat", pack=False), tokenizer)
    both = build_sft_data(DataConfig(path=a, map_fn="alpaca", template="internlm2_chat", pack=False,
                                     sources=[{"path": b, "map_fn": "openai"}]), tokenizer)
    assert list(both.train["input_ids"]) == list(one_a.train["input_ids"]) + list(one_b.train["input_ids"])
    assert both.stats.kept == 10 and both.stats.rows == 11 and both.stats.dropped_total == 1
    assert [(s["path"], s["map_fn"], s["kept"]) for s in both.stats.sources] == [(a, "alpaca", 6), (b, "openai", 4)]
    assert any(line.startswith(f"  source {b} (openai): 4 of 5 rows kept") for line in both.stats.lines())
    assert any(reason.startswith(f"{b}: ") for reason in both.stats.dropped)
    # the XTuner-config form: only sources, max_rows per source, an eval split from each
    c = _write(tmp_path / "c.jsonl", [{"question": f"q{i}", "answer": f"a{i}"} for i in range(5)])
    listed = build_sft_data(DataConfig(sources=[{"path": a, "map_fn": "alpaca", "max_rows": 3}, {"path": c}],
                                       template="internlm2_chat", pack=True, eval_size=2, max_length=256), tokenizer)
    assert (listed.stats.rows, listed.eval_stats.rows) == (6, 2)
    assert [s["rows"] for s in listed.eval_stats.sources] == [1, 1] and listed.stats.sources[1]["map_fn"] == "columns"


def test_the_preview_shows_each_sources_share(tmp_path, tokenizer):
    a, b = _two_sources(tmp_path)
    result = preview(DataConfig(path=a, map_fn="alpaca", template="internlm2_chat",
                                sources=[{"path": b, "map_fn": "openai"}]), tokenizer, n=2)
    assert [s["path"] for s in result.stats.sources] == [a, b]
    assert len(result.samples) == 2 and result.samples[1].conversation[0]["input"] == "hi 0"
    shares = [line for line in result.stats.lines() if line.startswith("  source ")]
    assert len(shares) == 2 and "% of the tokens" in shares[0]


def test_a_bad_source_names_its_field(tmp_path):
    import pytest

    from tunesmith.core.data.sources import data_sources
    from tunesmith.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        data_sources(DataConfig(path="a.json", sources=[{"map_fn": "openai"}]))
    assert err.value.field == "data.sources[0].path"
    assert [s.path for s in data_sources(DataConfig(path="a.json"))] == ["a.json"]  # the single-source form


def test_preflight_checks_every_source(tmp_path):
    from tunesmith.core import preflight
    from tunesmith.core.config import RunConfig

    a, b = _two_sources(tmp_path)
    cfg = RunConfig()
    cfg.data.path, cfg.data.sources = "", [{"path": a, "map_fn": "alpaca"}, {"path": str(tmp_path / "gone.jsonl")},
                                           {"path": b, "map_fn": "opneai"}]
    found = preflight.problems(cfg, check_env=False)
    problems = [str(p) for p in found]
    assert any("gone.jsonl" in p and "does not exist" in p for p in problems), problems
    assert any("opneai" in p for p in problems), problems
    assert not any("no dataset given" in p for p in problems)
    assert {"data.sources[1].path", "data.sources[2].map_fn"} <= {p.field for p in found}


def test_check_dataset_reads_the_dataset_section_of_a_run_config(capsys, tmp_path, tokenizer_dir):
    """`check-dataset CONFIG` (XTuner's check-custom-dataset): the config's sources, template, system prompt
    and max_length, with its model's tokenizer; a system prompt with minicpm is a warning."""
    from tunesmith.core.cli import main
    from tunesmith.core.config import RunConfig

    a, b = _two_sources(tmp_path)
    cfg = RunConfig()
    cfg.model.name_or_path = str(tokenizer_dir)
    cfg.data.path, cfg.data.map_fn, cfg.data.template, cfg.data.system = a, "alpaca", "minicpm", "Be brief."
    cfg.data.max_length, cfg.data.sources = 300, [{"path": b, "map_fn": "openai"}]
    path = tmp_path / "run.yaml"
    path.write_text(cfg.to_yaml(), encoding="utf-8")
    code = main(["check-dataset", str(path), "--show", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"data: {a}, {b}" in out and "template: minicpm" in out and "max_length: 300" in out
    assert f"  source {b} (openai): 4 of 5 rows kept" in out
    assert "warning:" in err and "no system slot" in err
    code = main(["check-dataset"])
    assert code == 2 and "no dataset given" in capsys.readouterr().err


def test_preference_stages_refuse_several_sources():
    from tunesmith.core.config import RunConfig

    cfg = RunConfig()
    cfg.method.stage, cfg.data.path, cfg.data.sources = "dpo", "pairs.jsonl", [{"path": "more.jsonl"}]
    assert any(p.field == "data.sources" for p in cfg.schema_problems())
