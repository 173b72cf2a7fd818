"""Data tab callbacks: demo sets, uploads, column detection with a suggested map_fn, the preview."""

from __future__ import annotations

import json

import pytest

from app.callbacks import data_cb
from app.settings import AppSettings
from core.errors import UserError


@pytest.fixture
def settings(tmp_path):
    s = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path / "home")})
    s.ensure_dirs()
    return s


def test_peek_columns_reads_only_the_first_row(tmp_path):
    jl = tmp_path / "a.jsonl"
    jl.write_text('\n{"instruction": "i", "output": "o"}\n{"broken\n')
    assert data_cb.peek_columns(str(jl)) == (["instruction", "output"], {"instruction": "i", "output": "o"})
    js = tmp_path / "b.json"
    js.write_text(json.dumps([{"messages": [{"role": "user", "content": "x"}]}]))
    assert data_cb.peek_columns(str(js))[0] == ["messages"]
    csv = tmp_path / "c.csv"
    csv.write_text("question,answer\nq1,a1\n")
    assert data_cb.peek_columns(str(csv)) == (["question", "answer"], {"question": "q1", "answer": "a1"})


def test_inspect_suggests_a_map_fn_and_offers_columns(settings):
    path = settings.uploads_dir / "alp.json"
    path.write_text(json.dumps([{"instruction": "Say hi", "input": "", "output": "hi"}]))
    out = data_cb.inspect_data({"data.path": str(path), "data.map_fn": "auto", "top/lang": "en"}, settings)
    assert out["data.map_fn"] == "alpaca" and "**alpaca**" in out["data/suggest"]
    assert out["data/col_input"]["choices"] == ["", "instruction", "input", "output"]

    odd = settings.uploads_dir / "odd.json"
    odd.write_text(json.dumps([{"frage": "f", "antwort": "a"}]))
    out = data_cb.inspect_data({"data.path": str(odd), "top/lang": "zh"}, settings)
    assert out["data.map_fn"] == "columns" and out["data/columns"] == {"open": True}
    assert "没有匹配" in out["data/suggest"]


def test_inspect_refuses_paths_outside_the_allowed_folders(settings):
    with pytest.raises(UserError, match="outside the folders"):
        data_cb.inspect_data({"data.path": "/etc/passwd"}, settings)


def test_upload_is_sanitised_and_stored_under_uploads(settings, tmp_path):
    tmp = tmp_path / "gradio" / "../../my set.jsonl".replace("../", "")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text('{"input": "a", "output": "b"}\n')
    out = data_cb.upload({"data/upload": str(tmp), "top/lang": "en"}, settings)
    stored = settings.uploads_dir / "my_set.jsonl"
    assert out["data.path"] == str(stored) and stored.read_text() == tmp.read_text()
    assert out["data/upload"] is None and "Uploaded as" in out["data/status"]
    settings.max_upload_mb = 0
    with pytest.raises(UserError, match="upload limit"):
        data_cb.upload({"data/upload": str(tmp)}, settings)


def test_demo_sets_and_template_hint():
    assert all(path.endswith(label) for label, path in data_cb.demo_choices())
    hint = data_cb.template_hint({"model.name_or_path": "Qwen/Qwen2-7B-Instruct", "data.template": "auto"})
    assert hint["data/template_hint"] == "auto → **qwen_chat**"
    assert data_cb.template_hint({"model.name_or_path": "x", "data.template": "alpaca"})["data/template_hint"] == ""


def test_preview_highlights_trained_tokens(settings, tokenizer_dir):
    settings.extra_roots = (tokenizer_dir,)
    path = settings.uploads_dir / "d.jsonl"
    rows = [{"input": f"Question {i}?", "output": f"Answer number {i}."} for i in range(5)]
    rows.append({"input": "x", "output": ""})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    values = {"data.path": str(path), "data.map_fn": "default", "data.template": "auto", "data.max_length": 128,
              "model.name_or_path": str(tokenizer_dir), "method.stage": "sft", "top/lang": "en"}
    out = data_cb.run_preview(values, settings)
    assert out["data/preview"].count('class="ts-sample"') == 3
    assert '<span class="ts-sup">Answer number 0.' in out["data/preview"]
    assert 'class="ts-masked"' in out["data/preview"] and "Question 0?" in out["data/preview"]
    assert "<td>rows</td><td>6</td>" in out["data/stats"] and "<td>kept</td><td>5</td>" in out["data/stats"]
    assert out["data/hist"]["rows"].sum() == 5
    assert "5 of 6 rows kept" in out["data/status"]
    assert out["data/cmd"].startswith("python -m core check-dataset")


def test_preview_errors_are_readable(settings, tokenizer_dir):
    settings.extra_roots = (tokenizer_dir,)
    bad = settings.uploads_dir / "bad.json"
    bad.write_text('[{"input": "a", "output": "b"},\n {"input": oops}]')
    values = {"data.path": str(bad), "data.map_fn": "default", "model.name_or_path": str(tokenizer_dir),
              "top/lang": "en"}
    with pytest.raises(UserError, match="line 2"):
        data_cb.run_preview(values, settings)
    with pytest.raises(UserError, match="no dataset"):
        data_cb.run_preview({**values, "data.path": ""}, settings)
