"""The Data tab's "more files" box (data.sources) and each source's share in the preview table."""

from __future__ import annotations

from tunesmith.app.form import config_from_values, values_from_config
from tunesmith.app.render_data import stats_html
from tunesmith.core.config import RunConfig


def test_more_files_round_trip_through_the_form():
    cfg = RunConfig()
    cfg.data.sources = [{"path": "b.jsonl"}, {"path": "c.csv", "map_fn": "columns", "columns": {"input": "q",
                                                                                                 "output": "a"}}]
    values = values_from_config(cfg)
    assert values["data.sources"] == "b.jsonl\nc.csv | columns | input=q,output=a"
    assert config_from_values(values).data.sources == cfg.data.sources
    cfg.data.sources[0]["max_rows"] = 5
    values = values_from_config(cfg)
    assert config_from_values(values, cfg).data.sources == cfg.data.sources  # unedited: max_rows kept
    values["data.sources"] = "b.jsonl\nd.json | alpaca\n"
    assert config_from_values(values).data.sources == [{"path": "b.jsonl"}, {"path": "d.json", "map_fn": "alpaca"}]
    values["data.sources"] = ""
    assert config_from_values(values).data.sources == []


def test_the_preview_table_shows_each_sources_share():
    stats = {"rows": 9, "kept": 8, "sources": [{"path": "a.json", "map_fn": "alpaca", "rows": 5, "kept": 4,
                                                "tokens": 300},
                                               {"path": "b.jsonl", "map_fn": "openai", "rows": 4, "kept": 4,
                                                "tokens": 100}]}
    html = stats_html(stats)
    assert "source a.json (alpaca)" in html and "4 of 5 rows, 300 tokens (75%)" in html
    assert "source b.jsonl (openai)" in html and "(25%)" in html
    assert "source " not in stats_html({"rows": 1, "kept": 1, "sources": stats["sources"][:1]})
