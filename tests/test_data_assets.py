"""The demo datasets in assets/ are what make_demo_data.py writes, and our map_fns read them."""

from __future__ import annotations

import importlib.util
import json

from conftest import ROOT
from tunesmith.core.data.map_fns import get_map_fn, suggest_map_fn


def _script():
    spec = importlib.util.spec_from_file_location("make_demo_data", ROOT / "tunesmith" / "assets" / "make_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_assets_match_the_generator(tmp_path):
    assert _script().main(["--out-dir", str(tmp_path)]) == 0
    for name in ("identity.json", "identity.template.json", "colors.jsonl"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (ROOT / "tunesmith" / "assets" / name).read_text(encoding="utf-8"), name


def test_identity_placeholders_and_rename(tmp_path):
    template = json.loads((ROOT / "tunesmith" / "assets" / "identity.template.json").read_text(encoding="utf-8"))
    default = json.loads((ROOT / "tunesmith" / "assets" / "identity.json").read_text(encoding="utf-8"))
    assert len(template) == len(default) >= 50
    assert all("{{name}}" in r["messages"][1]["content"] for r in template)
    answers = [r["messages"][1]["content"] for r in default]
    assert all("Melody" in a and "{{" not in a for a in answers)
    assert any("the Tunesmith team" in a for a in answers) and any("The Tunesmith team created me" in a for a in answers)
    assert sum(any("\u4e00" <= ch <= "\u9fff" for ch in r["messages"][0]["content"]) for r in default) >= 15
    assert suggest_map_fn(["messages"]) == "openai"
    assert get_map_fn("openai")(default[0])["conversation"][0]["output"].startswith("I am Melody")
    _script().main(["--out-dir", str(tmp_path), "--name", "Ada", "--author", "Acme Labs", "--identity-only"])
    renamed = json.loads((tmp_path / "identity.json").read_text(encoding="utf-8"))
    assert renamed[0]["messages"][1]["content"] == "I am Ada, an AI assistant developed by Acme Labs. How can I help you today?"
    assert not (tmp_path / "colors.jsonl").exists()


def test_colors_follow_xtuner_colorist_style():
    rows = [json.loads(line) for line in (ROOT / "tunesmith" / "assets" / "colors.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 141  # 148 CSS4 names minus the 7 "grey" spellings, two descriptions each
    assert rows[0] == {"color": "#f0f8ff", "description": "Alice Blue: A very pale, soft, muted white with a hint of "
                                                          "blue that feels clean and airy."}
    assert all(r["color"].startswith("#") and len(r["color"]) == 7 for r in rows)
    conv = get_map_fn("colors")(rows[0])["conversation"][0]
    assert conv["input"] == "A very pale, soft, muted white with a hint of blue that feels clean and airy."
    assert conv["output"] == "#f0f8ff" and suggest_map_fn(list(rows[0])) == "colors"
