"""trust_remote_code stays off unless the user turns it on (issue 6, Security).

A tiny Llama folder that also ships ``modeling_custom.py`` (named in config.json's ``auto_map``) which
leaves a marker file when Python imports it. Every loader of the project is pointed at it with its
defaults - chat engine, GUI tokenizer, model facts, merge, convert, training - and the marker must stay
absent; the same folder with ``trust_remote_code=True`` does create it, so the marker really detects
execution. Defaults are also read from the signatures, the CLI parser and the GUI form; the Model tab
shows a warning exactly while the box is ticked. (Presets never set it: tests/test_presets.py.)
"""

from __future__ import annotations

import inspect
import json
import shutil

import pytest


@pytest.fixture(scope="module")
def remote_model(tmp_path_factory, tiny_model_dir):
    """(model folder with remote code, the marker path its code would write)."""
    root = tmp_path_factory.mktemp("remote-code")
    folder, marker = root / "model", root / "REMOTE_CODE_RAN"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "modeling_custom.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported\\n')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n\n\n"
        "class CustomConfig(LlamaConfig):\n    pass\n\n\n"
        "class CustomForCausalLM(LlamaForCausalLM):\n    config_class = CustomConfig\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "modeling_custom.CustomConfig",
                          "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder, marker


@pytest.mark.slow
def test_no_loader_runs_the_models_code_by_default(remote_model, tmp_path, tokenizer_dir):
    from test_export_helpers import make_lora_run

    from tunesmith.app.callbacks.common import tokenizer_for
    from tunesmith.core.chat import ChatEngine
    from tunesmith.core.export import convert_to_hf, merge_adapter
    from tunesmith.core.model import model_facts

    folder, marker = remote_model
    engine = ChatEngine.load(str(folder), device="cpu")
    assert type(engine.model).__name__ == "LlamaForCausalLM"  # the library's own class, not the shipped one
    tokenizer_for(str(folder))
    facts = model_facts(str(folder))
    assert facts["layers"] == 2
    run, _ = make_lora_run(tmp_path / "run", folder, steps=(1,))
    merge_adapter(str(folder), run, tmp_path / "merged", dtype="fp32")
    convert_to_hf(run, tmp_path / "adapter")
    assert not marker.exists(), "a loader ran the model's own Python code without being asked"


@pytest.mark.slow
def test_training_with_the_default_config_does_not_run_it(remote_model, tmp_path):
    from tunesmith.core.train.launcher import run_here
    from toy import sft_rows, toy_config, write_json

    folder, marker = remote_model
    data = write_json(sft_rows(8), tmp_path / "toy.json")
    cfg = toy_config(folder, data, tmp_path / "run", ["training.max_steps=1", "training.save_steps=0"])
    assert cfg.model.trust_remote_code is False
    status = run_here(cfg)
    assert status["state"] == "finished", status
    assert not marker.exists()


def test_turned_on_it_does_run_so_the_marker_detects_execution(remote_model):
    from tunesmith.core.chat import ChatEngine

    folder, marker = remote_model
    try:
        ChatEngine.load(str(folder), device="cpu", trust_remote_code=True)
    except Exception:  # whether the custom class then loads is not the point
        pass
    assert marker.exists() and "imported" in marker.read_text()
    marker.unlink()


def test_every_default_is_off():
    from tunesmith.app.callbacks import chat_cb, common
    from tunesmith.app.form import gui_default_config, values_from_config
    from tunesmith.core.chat import ChatEngine
    from tunesmith.core.chat.loading import load_model
    from tunesmith.core.cli import build_parser
    from tunesmith.core.config import RunConfig

    assert RunConfig().model.trust_remote_code is False
    assert gui_default_config().model.trust_remote_code is False
    assert values_from_config(gui_default_config())["model.trust_remote_code"] is False
    for fn in (ChatEngine.load, load_model, chat_cb.engine_for, common.tokenizer_for):
        assert inspect.signature(fn).parameters["trust_remote_code"].default is False, fn
    assert build_parser().parse_args(["chat", "some-model"]).trust_remote_code is False
    from tunesmith.core.export import convert_to_hf, merge_adapter

    for fn in (convert_to_hf, merge_adapter):  # export never offers it: architectures load with library code
        assert "trust_remote_code" not in inspect.signature(fn).parameters


def test_chat_tab_passes_the_model_tabs_choice(monkeypatch, tmp_path, tiny_model_dir):
    """The GUI's chat loads with trust_remote_code only when the Model tab's box is ticked."""
    from tunesmith.app.callbacks import chat_cb
    from tunesmith.app.settings import AppSettings
    from tunesmith.core.chat import ChatEngine
    from tunesmith.core.errors import UserError

    seen = []

    def fake_load(model, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        raise UserError("stop here.", "-")

    monkeypatch.setattr(ChatEngine, "load", staticmethod(fake_load))
    # an engine another test left in the app's cache would answer without loading
    monkeypatch.setattr(chat_cb, "_ENGINES", type(chat_cb._ENGINES)())
    settings = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path)}, extra_roots=(str(tiny_model_dir),))
    values = {"chat/source": "base", "chat/base": str(tiny_model_dir), "chat/max_new_tokens": 8,
              "chat/temperature": 0.1, "chat/top_p": 0.75, "chat/top_k": 40, "chat/repetition_penalty": 1.0,
              "chat/template": "auto", "top/lang": "en"}
    for ticked in (None, False, True):
        with pytest.raises(UserError, match="stop here"):
            list(chat_cb.load({**values, "model.trust_remote_code": ticked}, settings))
    assert seen == [False, False, True]


@pytest.mark.parametrize("lang,needle", [("en", "runs Python files"), ("zh", "信任远程代码")])
def test_model_tab_warns_while_trust_remote_code_is_on(lang, needle):
    from tunesmith.app.callbacks import model_cb

    on = model_cb.trust_warning({"model.trust_remote_code": True, "top/lang": lang})["model/trust_warning"]
    assert on["visible"] is True and needle in on["value"] and "⚠" in on["value"]
    off = model_cb.trust_warning({"model.trust_remote_code": False, "top/lang": lang})["model/trust_warning"]
    assert off["visible"] is False and off["value"] == ""


def test_model_tab_wires_the_warning_to_the_box(tmp_path):
    """The warning widget starts hidden and the box's change event updates it (the real app layout)."""
    import gradio as gr

    from tunesmith.app.settings import AppSettings
    from tunesmith.app.ui import build_app

    demo, reg = build_app(AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path)}))
    warning, box = reg["model/trust_warning"], reg["model.trust_remote_code"]
    assert isinstance(warning, gr.Markdown) and warning.visible is False and box.value is False
    deps = demo.config["dependencies"]
    ids = {"box": box._id, "warning": warning._id}
    assert any(any(t[0] == ids["box"] and t[1] == "change" for t in d["targets"]) and ids["warning"] in d["outputs"]
               for d in deps)
