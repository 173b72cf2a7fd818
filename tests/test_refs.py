"""tunesmith.core.refs: one rule for what a model / dataset reference names (issue 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunesmith.core import preflight, refs
from tunesmith.core.config import RunConfig
from tunesmith.core.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_a_missing_data_file_is_missing_not_a_hub_id(tmp_path, monkeypatch):
    """The confirmed bug: data/train.json that does not exist passed the checks as a hub id and failed only
    inside the trainer subprocess."""
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = RunConfig().with_overrides([f"model.name_or_path={model}", "data.path=data/train.json"])
    problems = [p for p in preflight.problems(cfg, check_env=False) if p.field == "data.path"]
    assert problems and "data/train.json does not exist" in str(problems[0])
    assert refs.classify("data/train.json") == refs.MISSING


@pytest.mark.parametrize("text, kind", [
    ("embedded:SmolLM2-135M-Instruct", "embedded"),
    ("tatsu-lab/alpaca", "hub"), ("Qwen/Qwen2.5-0.5B-Instruct", "hub"),
    ("data/train.json", "missing"), ("models/x.gguf", "missing"), ("./org/name", "missing"),
    ("~/no/such/thing", "missing"), ("a/b/c", "missing"), ("plain-name", "missing"),
    ("", "empty"), ("  ", "empty"),
])
def test_classify(text, kind):
    assert refs.classify(text) == kind


def test_local_paths_win_over_the_hub_shape(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").mkdir()
    (tmp_path / "org" / "data").write_text("x")
    assert refs.classify("org/name") == refs.FOLDER and not refs.is_hub_ref("org/name")
    assert refs.classify("org/data") == refs.FILE
    assert refs.resolve_model_path("org/name") == "org/name" and refs.resolve_model_path("a/b") == "a/b"


def test_unknown_embedded_name():
    with pytest.raises(UserError, match="unknown embedded model"):
        refs.resolve_model_path("embedded:Nope")


def test_the_rule_lives_only_in_core_refs():
    """No other module of core/ or app/ tests the embedded: prefix or the hub-id shape itself."""
    offenders = []
    for path in sorted((ROOT / "tunesmith").rglob("*.py")):
        if path.name == "refs.py" and path.parent.name == "core":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"""startswith\(\s*["']embedded:""", text) or re.search(r"def _?(looks_like|is)_hub_id", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_a_data_file_that_cannot_work_is_a_preflight_problem(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    empty = tmp_path / "empty.json"
    empty.write_text("")
    cfg = RunConfig().with_overrides([f"model.name_or_path={model}", f"data.path={empty}"])
    problems = [p for p in preflight.problems(cfg, check_env=False) if p.field == "data.path"]
    assert problems and "Fix:" in str(problems[0])
