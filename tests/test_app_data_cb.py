"""Data tab callbacks: demo sets, uploads, column detection with a suggested map_fn, the preview."""

from __future__ import annotations

import json

import pytest

from tunesmith.app.callbacks import data_cb
from tunesmith.app.settings import AppSettings
from tunesmith.core.errors import UserError


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
    # generic columns: a plain conversation, instruction and input joined as the user's message
    assert out["data.map_fn"] == "columns" and "**columns**" in out["data/suggest"]
    assert out["data/col_input"]["choices"] == ["", "instruction", "input", "output", "instruction+input"]
    assert out["data/col_input"]["value"] == "instruction+input" and out["data/col_output"]["value"] == "output"

    odd = settings.uploads_dir / "odd.json"
    odd.write_text(json.dumps([{"frage": "f", "antwort": "a"}]))
    out = data_cb.inspect_data({"data.path": str(odd), "top/lang": "zh"}, settings)
    assert out["data.map_fn"] == "columns" and out["data/columns"] == {"open": True}
    assert "没有匹配" in out["data/suggest"]


def test_inspect_refuses_paths_outside_the_allowed_folders(settings):
    out = data_cb.inspect_data({"data.path": "/etc/passwd"}, settings)
    assert "outside the folders" in out["data/status"] and "ts-error" in out["data/status"]
    assert out["data/preview"] == "" and out["data/cmd"] == ""  # the previous file's preview leaves the screen


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
    assert out["data/hist"]["value"]["rows"].sum() == 5
    assert (out["data/hist"]["x_title"], out["data/hist"]["y_title"]) == ("tokens per row", "rows")
    assert "5 of 6 rows kept" in out["data/status"]
    # the zh page: table labels and histogram axes from the locale table, not English
    zh = data_cb.run_preview({**values, "top/lang": "zh"}, settings)
    assert "<td>行数</td><td>6</td>" in zh["data/stats"] and "<td>保留</td><td>5</td>" in zh["data/stats"]
    assert (zh["data/hist"]["x_title"], zh["data/hist"]["y_title"]) == ("每行 token 数", "行数")
    for word in ("rows", "kept", "dropped", "tokens", "truncated", "supervised"):
        assert f"<td>{word}" not in zh["data/stats"], word
    assert out["data/cmd"].startswith("python -m tunesmith check-dataset")
    # switching the language afterwards redraws the same table (and the drop reason) from the kept stats
    switched = data_cb.relabel_stats({data_cb.STATS: out[data_cb.STATS], "top/lang": "zh"})
    assert "<td>行数</td><td>6</td>" in switched["data/stats"] and "回答为空" in switched["data/stats"]
    assert (switched["data/hist"]["x_title"], switched["data/hist"]["y_title"]) == ("每行 token 数", "行数")
    assert "empty answer" in out["data/stats"] and "<td>rows" not in switched["data/stats"]


def test_preview_errors_are_readable(settings, tokenizer_dir):
    settings.extra_roots = (tokenizer_dir,)
    bad = settings.uploads_dir / "bad.json"
    bad.write_text('[{"input": "a", "output": "b"},\n {"input": oops}]')
    values = {"data.path": str(bad), "data.map_fn": "default", "model.name_or_path": str(tokenizer_dir),
              "top/lang": "en"}
    assert "line 2" in data_cb.run_preview(values, settings)["data/status"]
    assert "no dataset" in data_cb.run_preview({**values, "data.path": ""}, settings)["data/status"]


# ---- issue 12 items 1, 2, 5: right guesses about a first-time user's files

@pytest.mark.parametrize("columns,mapping", [
    (("question", "answer"), {"input": "question", "output": "answer"}),
    (("prompt", "response"), {"input": "prompt", "output": "response"}),
    (("input", "output"), {"input": "input", "output": "output"}),
    (("instruction", "output"), {"input": "instruction", "output": "output"}),
    (("prompt", "completion"), {"input": "prompt", "output": "completion"}),
])
def test_generic_columns_become_a_plain_conversation_without_a_system_prompt(settings, tokenizer_dir, columns,
                                                                             mapping):
    from tunesmith.app.form import gui_default_config, values_from_config

    settings.extra_roots = (tokenizer_dir,)
    path = settings.uploads_dir / "faq.csv"
    path.write_text(f"{columns[0]},{columns[1]}\nWhat are your hours?,9 to 5.\nDo you ship abroad?,Yes.\n")
    base = {**values_from_config(gui_default_config()), "data.path": str(path), "top/lang": "en"}
    out = data_cb.inspect_data(base, settings)
    assert out["data.map_fn"] == "columns", out["data/suggest"]
    assert {r: out[f"data/col_{r}"]["value"] for r in mapping} == mapping
    assert "no system prompt" in out["data/suggest"] and "律师" not in out["data/suggest"]
    values = {**base, "data.map_fn": "columns", "model.name_or_path": str(tokenizer_dir),
              **{f"data/col_{r}": out[f"data/col_{r}"]["value"] for r in ("input", "output", "system", "history")}}
    preview = data_cb.run_preview(values, settings)
    assert "What are your hours?" in preview["data/preview"] and "9 to 5." in preview["data/preview"]
    assert "律师" not in preview["data/preview"] and "data-system-from" not in preview["data/preview"]


def test_a_domain_map_fn_is_suggested_only_for_its_own_columns_and_its_system_prompt_is_named(settings,
                                                                                               tokenizer_dir):
    from tunesmith.app.form import gui_default_config, values_from_config

    settings.extra_roots = (tokenizer_dir,)
    path = settings.uploads_dir / "sql.json"
    path.write_text(json.dumps([{"context": "CREATE TABLE t (a int)", "question": "count rows", "answer": "SELECT 1"}]))
    base = {**values_from_config(gui_default_config()), "data.path": str(path), "top/lang": "en"}
    out = data_cb.inspect_data(base, settings)
    assert out["data.map_fn"] == "sql" and "It adds the system prompt “If you are an expert in SQL" in out["data/suggest"]
    law = {**base, "data.path": str(settings.uploads_dir / "qa.json"), "data.map_fn": "law_reference",
           "model.name_or_path": str(tokenizer_dir)}
    (settings.uploads_dir / "qa.json").write_text(json.dumps([{"question": "q?", "answer": "a."}]))
    preview = data_cb.run_preview(law, settings)["data/preview"]
    assert 'data-system-from="law_reference"' in preview and "map_fn law_reference" in preview
    zh = data_cb.run_preview({**law, "top/lang": "zh"}, settings)["data/preview"]
    assert "map_fn law_reference 给每一行加上了系统提示词" in zh


def test_semicolon_csv_is_read_as_columns(settings):
    path = settings.uploads_dir / "de.csv"
    path.write_text("Frage;Antwort\nWie heißt du?;Melody\n", encoding="utf-8")
    assert data_cb.peek_columns(str(path)) == (["Frage", "Antwort"], {"Frage": "Wie heißt du?", "Antwort": "Melody"})
    out = data_cb.inspect_data({"data.path": str(path), "top/lang": "en"}, settings)
    assert out["data/col_input"]["choices"] == ["", "Frage", "Antwort"] and "Frage, Antwort" in out["data/suggest"]


def test_after_an_error_the_previous_preview_and_command_leave_the_screen(settings, tokenizer_dir):
    from tunesmith.app.form import gui_default_config, values_from_config

    settings.extra_roots = (tokenizer_dir,)
    good = settings.uploads_dir / "good.json"
    good.write_text(json.dumps([{"input": "hi", "output": "hello"}]))
    values = {**values_from_config(gui_default_config()), "data.path": str(good), "data.map_fn": "alpaca",
              "model.name_or_path": str(tokenizer_dir), "top/lang": "en"}
    out = data_cb.run_preview(values, settings)  # alpaca on input/output columns: the column error
    assert out["data/preview"] == "" and out["data/stats"] == "" and out["data/cmd"] == "" and out["data/hist"] is None
    assert "needs column(s) instruction" in out["data/status"]
    assert "Map columns by hand" in out["data/status"] and "--columns" not in out["data/status"]
    zh = data_cb.run_preview({**values, "top/lang": "zh"}, settings)["data/status"]
    assert "手动映射列" in zh and "错误：" in zh and "解决：" in zh


def test_the_identity_template_is_no_demo_set_but_teach_it_its_name_fills_it(settings):
    names = [label for label, _path in data_cb.demo_choices()]
    assert "identity.json" in names and not any("template" in n or n.endswith("_test.json") for n in names)
    with pytest.raises(UserError, match="name and an author"):
        data_cb.make_identity({"data/id_name": " ", "data/id_author": "Ann", "top/lang": "en"}, settings)
    out = data_cb.make_identity({"data/id_name": "Nova", "data/id_author": "Ann's Lab", "top/lang": "en"}, settings)
    rows = json.loads(open(out["data.path"], encoding="utf-8").read())
    text = json.dumps(rows, ensure_ascii=False)
    assert "{{" not in text and "I am Nova, an AI assistant developed by Ann's Lab" in text
    assert out["data.map_fn"] == "openai" and out["data.path"].startswith(str(settings.uploads_dir))
