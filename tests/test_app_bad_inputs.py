"""Bad input through the GUI callbacks, table-driven: each shows one clear message naming the
problem and the fix in the tab's status box, the callback returns normally (the app keeps
serving), and nothing the user had is deleted or overwritten."""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path

import pytest

from tunesmith.app.callbacks import chat_cb, config_cb, data_cb, export_cb, model_cb, train_cb
from tunesmith.app.form import gui_default_config, values_from_config
from tunesmith.app.registry import guarded
from tunesmith.app.settings import AppSettings


@pytest.fixture(scope="module")
def env(tmp_path_factory, tokenizer_dir):
    home = tmp_path_factory.mktemp("bad-home")
    settings = AppSettings.from_env({"TUNESMITH_HOME": str(home)}, extra_roots=(str(tokenizer_dir),))
    settings.ensure_dirs()
    files = home / "files"
    files.mkdir()
    (files / "empty.json").write_text("")
    (files / "latin1.jsonl").write_bytes('{"input": "caf\xe9", "output": "x"}\n'.encode("latin-1"))
    (files / "broken.json").write_text('[{"input": "a", "output": "b"},\n {"input": }]')
    (files / "data.xlsx").write_text("not really")
    (files / "alpaca.json").write_text(json.dumps([{"instruction": "hi", "input": "", "output": "hello"}]))
    (files / "all_empty.jsonl").write_text("".join(json.dumps({"input": "q", "output": ""}) + "\n" for _ in range(3)))
    (files / "notes.yaml").write_text("- my: notes\n")
    (files / "types.yaml").write_text("training:\n  batch_size: lots\n")
    (files / "unknown.yaml").write_text("trainer:\n  lr: 1\n")
    (files / "tabs.yaml").write_text("training:\n\tbatch_size: 2\n")
    (files / "model.bin").write_text("x")
    (files / "nomodel").mkdir()
    (files / "big.json").write_bytes(b"[" + b" " * (2 * 2**20) + b"]")
    return settings, files, tokenizer_dir


def form(env, **changes):
    settings, files, tok = env
    values = {**values_from_config(gui_default_config()), "top/lang": "en",
              "model.name_or_path": str(tok), "data.path": str(files / "alpaca.json"), "data.map_fn": "alpaca"}
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return values


def chat_values(**changes):
    v = {"chat/source": "base", "chat/base": "", "chat/max_new_tokens": 16, "chat/temperature": 0.1, "chat/top_p": 0.9,
         "chat/top_k": 40, "chat/repetition_penalty": 1.0, "chat/template": "auto", "top/lang": "en"}
    v.update({k.replace("__", "/"): val for k, val in changes.items()})
    return v


def cases(env):
    """(name, callback, values, status id, text the message must contain)."""
    settings, files, tok = env
    s = settings
    preview = partial(data_cb.run_preview, settings=s)
    start = partial(train_cb.start, settings=s)
    return [
        # dataset files
        ("missing dataset", preview, form(env, data__path=str(files / "nope.json")), "data/status", "does not exist"),
        ("empty dataset", preview, form(env, data__path=str(files / "empty.json")), "data/status", "empty"),
        ("not utf-8", preview, form(env, data__path=str(files / "latin1.jsonl")), "data/status", "UTF-8"),
        ("broken json", preview, form(env, data__path=str(files / "broken.json")), "data/status", "line 2"),
        ("unknown extension", preview, form(env, data__path=str(files / "data.xlsx")), "data/status", ".xlsx"),
        ("dataset outside roots", preview, form(env, data__path="/etc/passwd"), "data/status", "outside the folders"),
        ("every row dropped", preview, form(env, data__path=str(files / "all_empty.jsonl"), data__map_fn="default"),
         "data/status", "dropped"),
        ("upload too big", partial(data_cb.upload, settings=AppSettings(**{**s.__dict__, "max_upload_mb": 1})),
         {"data/upload": str(files / "big.json")}, "data/status", "upload limit"),
        ("upload wrong kind", partial(data_cb.upload, settings=s), {"data/upload": str(files / "model.bin")},
         "data/status", "not a file kind"),
        # map_fn / columns / templates
        ("unknown map_fn", preview, form(env, data__map_fn="alpacca"), "data/status", "alpaca"),
        ("map_fn does not fit columns", preview, form(env, data__map_fn="sharegpt"), "data/status", "conversations"),
        ("columns without output", start, form(env, data__map_fn="columns", **{"data/col_input": "instruction"}),
         "train/status", "data.columns"),
        ("unknown template", preview, form(env, data__template="chatml_nope"), "data/status",
         "unknown prompt template"),
        # model paths
        ("missing model folder", start, form(env, model__name_or_path=str(files / "no-model")), "train/status",
         "does not exist"),
        ("folder without config.json", partial(model_cb.read_facts, settings=s),
         form(env, model__name_or_path=str(files / "nomodel")), "model/status", "config.json"),
        ("model outside roots", partial(model_cb.read_facts, settings=s), form(env, model__name_or_path="/usr/lib"),
         "model/status", "outside the folders"),
        ("import a non-gguf file", partial(model_cb.import_gguf, settings=s),
         {"model/gguf_path": str(files / "model.bin")}, "model/status", ".gguf"),
        # configs
        ("yaml with a wrong type", partial(config_cb.load_config, settings=s),
         {"top/config_path": str(files / "types.yaml")}, "top/status", "whole number"),
        ("yaml with an unknown section", partial(config_cb.load_config, settings=s),
         {"top/config_path": str(files / "unknown.yaml")}, "top/status", "unknown section"),
        ("yaml that does not parse", partial(config_cb.load_config, settings=s),
         {"top/config_path": str(files / "tabs.yaml")}, "top/status", "not valid YAML"),
        ("save over a non-config", partial(config_cb.save_config, settings=s),
         form(env, **{"top/config_path": str(files / "notes.yaml")}), "top/status", "left untouched"),
        ("impossible values", start, form(env, training__batch_size=0, training__learning_rate=0.5),
         "train/status", "training.learning_rate"),
        ("text in a number box", start, form(env, training__num_epochs="three"), "train/status", "must be a number"),
        ("emptied number box", start, form(env, lora__r=None), "train/status", "lora.r"),
        ("run folder outside roots", start, form(env, output__run_dir="/var/tmp/x"), "train/status",
         "outside the folders"),
        # runs / export
        ("stop with no run", partial(train_cb.stop, settings=s), {"train/current": "", "top/lang": "en"},
         "train/status", "No run is selected"),
        ("open a run outside roots", partial(train_cb.open_run, settings=s), {"train/runs": "/etc"}, "train/status",
         "outside the folders"),
        ("export without a run", lambda v: list(export_cb.export(v, s)), {"export/run": "", "export/mode": "merge"},
         "export/status", "no run chosen"),
        # chat parameters and sources
        ("chat top_p out of range", partial(chat_cb.generation_settings), chat_values(chat__top_p=1.5), "chat/status",
         "top_p"),
        ("chat temperature negative", partial(chat_cb.generation_settings), chat_values(chat__temperature=-1),
         "chat/status", "temperature"),
        ("chat max_new_tokens zero", partial(chat_cb.generation_settings), chat_values(chat__max_new_tokens=0),
         "chat/status", "max_new_tokens"),
        ("chat model outside roots", lambda v: list(chat_cb.load(v, s)), chat_values(chat__base="/usr"), "chat/status",
         "outside the folders"),
        ("chat before loading", lambda v: list(chat_cb.send(v, s)), chat_values(chat__input="hi"), "chat/status",
         "Load a model first"),
    ]


def _snapshot(folder: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # over 2.5 s: kept out of make test-fast
def test_bad_inputs_give_one_clear_message_each(env):
    settings, files, _ = env
    before = _snapshot(files)
    table = cases(env)
    assert len(table) >= 25
    failures = []
    for name, fn, values, status, needle in table:
        out = guarded(fn, status)(values)
        shown = (out or {}).get(status, "") if isinstance(out, dict) else ""
        if "ts-error" not in shown or needle.lower() not in shown.lower():
            failures.append(f"{name}: expected {needle!r} in {status}, got {shown[:300]!r}")
        elif "internal error" in shown:
            failures.append(f"{name}: a crash, not a user message: {shown[:300]}")
        elif "Fix:" not in shown and "<li>" not in shown:
            failures.append(f"{name}: no fix given: {shown[:300]}")
    assert not failures, "\n".join(failures)
    assert _snapshot(files) == before, "a failed action changed the user's files"
