"""Issue 6's bad input matrix: one table, each row a bad input given to the CLI and, where the GUI has the
same action, to its callback.

For every row:
* CLI (``python -m tunesmith ...``): a non-zero exit, exactly one line starting ``error:`` that names the problem
  and carries a fix (``Fix:``), and no traceback. Rows marked ``sub`` run as real subprocesses (two at a
  time, in the background); the others run in this process through ``tunesmith.core.cli.main`` (CLI start-up costs
  seconds of imports, the in-process path shows exactly the same lines).
* GUI: the callback returns normally with an error box (and a fix) in the tab's status area.
* Nothing under the temporary folder that existed before the row is deleted or changed afterwards.

The 33 GUI-only bad inputs of tests/test_app_bad_inputs.py and the check-dataset / convert / chat error
texts of test_data_cli.py, test_export_errors.py and test_chat_cli.py are not repeated here in detail.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT


@dataclass
class Row:
    name: str
    argv: list[str]                   # CLI arguments after `python -m tunesmith`
    needles: tuple[str, ...]          # must all appear in the `error:` line (the problem and the fix)
    sub: bool = False                 # run as a real subprocess
    gui: Callable[[dict], object] | None = None   # the same action through the GUI callback
    gui_values: dict = field(default_factory=dict)
    gui_status: str = ""
    gui_needles: tuple[str, ...] = ()
    fix_on_advice: bool = False       # a run that fails inside the trainer: the fix is on the `advice:` line


# ---- the user's files --------------------------------------------------------------------------------

def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tokenizer_dir):
    """A temporary folder that looks like a user's: models, a LoRA run, datasets, configs, an export."""
    from test_export_helpers import make_lora_run
    from tiny import make_tiny_llama

    from tunesmith.app.settings import AppSettings
    from tunesmith.core.config import RunConfig

    root = tmp_path_factory.mktemp("matrix")
    user, home = root / "user", root / "home"
    user.mkdir()
    tiny = make_tiny_llama(user / "tiny", tokenizer_dir)
    narrow = make_tiny_llama(user / "narrow", tokenizer_dir, hidden=32)  # another base: adapter does not fit
    run, _ = make_lora_run(user / "run", tiny, steps=(1,))
    files = {
        "good.jsonl": _jsonl([{"input": f"q{i}", "output": f"a{i}"} for i in range(4)]),
        "empty.jsonl": "",
        "bad.json": '[{"input": "a", "output": "b"},\n {"input" "c", "output": "d"}]\n',
        "qa.jsonl": _jsonl([{"question": "q", "answer": "a"}]),
        "empty_out.jsonl": _jsonl([{"input": "q", "output": ""}, {"input": "r", "output": ""}]),
        "ends_on_user.jsonl": _jsonl([{"messages": [{"role": "user", "content": "hi"}]}] * 2),
        "data.xlsx": "not a dataset",
        "types.yaml": "training:\n  batch_size: lots\n",
        "unknown.yaml": "training:\n  learnin_rate: 0.1\n",
        "tabs.yaml": "training:\n\tbatch_size: 2\n",
        "impossible.yaml": "training:\n  learning_rate: -1\n  num_epochs: 0\n",
        "weights.bin": "not a model folder",
        "fake.gguf": "not really a gguf",
        "ds_stage7.json": '{"zero_optimization": {"stage": 7}}',
    }
    for name, content in files.items():
        (user / name).write_text(content)
    (user / "latin1.jsonl").write_bytes('{"input": "caf\xe9", "output": "x"}\n'.encode("latin-1"))
    # issue 9 part B: data files that crashed or misled
    (user / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (user / "strings.json").write_text('["a", "b"]')
    (user / "ragged.csv").write_text("input,output\nq,a\nq2,a2\nq3,a3,x,y,z\n")
    (user / "surrogate.jsonl").write_text('{"input": "q", "output": "a"}\n{"input": "\\ud800x", "output": "b"}\n')
    (user / "nan.jsonl").write_text('{"input": "q", "output": "a"}\n{"input": "q", "output": NaN}\n')
    (user / "list_content.jsonl").write_text(_jsonl([{"messages": [{"role": "user", "content": "q"},
                                                                  {"role": "assistant", "content": ["x", "y"]}]}] * 2))
    (user / "long_prompts.jsonl").write_text(_jsonl([{"prompt": "Please read this long story. " * 40 + f"Q{i}?",
                                                      "chosen": "Yes.", "rejected": "No."} for i in range(3)]))
    remote = _needs_remote_code(tiny, user / "remote")
    (user / "no_config").mkdir()
    (user / "no_config" / "notes.txt").write_text("weights went elsewhere")
    (user / "export").mkdir()
    (user / "export" / "mine.txt").write_text("an earlier export the user keeps")
    (user / "copies").mkdir()
    (user / "copies" / "smollm2_135m_instruct_lora_identity_e3_copy.yaml").write_text("# my edited copy\n")

    good = RunConfig()
    good.model.name_or_path, good.data.path, good.data.map_fn = str(tiny), str(user / "good.jsonl"), "default"
    good.method.finetuning, good.training.max_steps = "lora", 2
    good.save(user / "good.yaml")

    def variant(name: str, **changes) -> str:
        cfg = RunConfig.load(user / "good.yaml")
        for dotted, value in changes.items():
            section, key = dotted.split("__")
            setattr(getattr(cfg, section), key, value)
        cfg.save(user / name)
        return str(user / name)

    settings = AppSettings.from_env({"TUNESMITH_HOME": str(home)}, extra_roots=(str(user), str(tokenizer_dir)))
    settings.ensure_dirs()
    # The GUI's Run folder takes only runs of its runs list (issue 9), so its copy of the run lives there.
    gui_run = Path(shutil.copytree(run, settings.runs_root / "old-run"))
    return {"root": root, "user": user, "tiny": tiny, "remote": remote, "narrow": narrow, "run": run,
            "tok": tokenizer_dir,
            "settings": settings, "variant": variant, "gui_run": gui_run}


def _needs_remote_code(tiny: Path, folder: Path) -> Path:
    """A copy of the tiny model whose architecture only its own (shipped) code defines."""
    import shutil

    shutil.copytree(tiny, folder)
    (folder / "modeling_custom.py").write_text(
        "from transformers import LlamaConfig, LlamaForCausalLM\n\n\nclass CustomConfig(LlamaConfig):\n"
        "    model_type = 'tunesmith_custom'\n\n\nclass CustomForCausalLM(LlamaForCausalLM):\n"
        "    config_class = CustomConfig\n")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="tunesmith_custom", architectures=["CustomForCausalLM"],
                  auto_map={"AutoConfig": "modeling_custom.CustomConfig",
                            "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def form(w, **changes) -> dict:
    """Every GUI form value (the app's defaults) with the user's model and data, plus ``changes``."""
    from tunesmith.app.form import gui_default_config, values_from_config

    values = {**values_from_config(gui_default_config()), "top/lang": "en", "model.name_or_path": str(w["tiny"]),
              "data.path": str(w["user"] / "good.jsonl"), "data.map_fn": "default", "training.max_steps": 2}
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return values


def chat_values(w, **changes) -> dict:
    values = {"chat/source": "base", "chat/base": str(w["tiny"]), "chat/max_new_tokens": 8, "chat/temperature": 0.1,
              "chat/top_p": 0.75, "chat/top_k": 40, "chat/repetition_penalty": 1.0, "chat/template": "auto",
              "chat/system": "", "top/lang": "en", "model.trust_remote_code": False}
    values.update({k.replace("__", "/"): v for k, v in changes.items()})
    return values


def rows(w) -> list[Row]:
    from tunesmith.app.callbacks import chat_cb, config_cb, data_cb, export_cb, model_cb, train_cb

    s, u, v, tok = w["settings"], w["user"], w["variant"], str(w["tok"])
    start = partial(train_cb.start, settings=s)
    preview = partial(data_cb.run_preview, settings=s)
    facts = partial(model_cb.read_facts, settings=s)
    load_yaml = partial(config_cb.load_config, settings=s)
    export = lambda values: list(export_cb.export(values, s))  # noqa: E731 - a generator, run to the end
    chat_load = lambda values: list(chat_cb.load(values, s))  # noqa: E731
    exp = {"export/run": str(w["run"]), "export/checkpoint": "latest", "export/dtype": "fp32", "export/shard": "2GB",
           "top/lang": "en"}

    def check(data: str, *extra: str) -> list[str]:
        return ["check-dataset", "--data", str(u / data), "--tokenizer", tok, *extra]

    return [
        # ---- dataset files
        Row("dataset missing", ["train", v("c_missing.yaml", data__path=str(u / "nope.json"))],
            ("nope.json does not exist", "Fix: Check the path"), sub=True,
            gui=start, gui_values=form(w, data__path=str(u / "nope.json")), gui_status="train/status",
            gui_needles=("does not exist",)),
        Row("dataset empty", ["train", v("c_empty.yaml", data__path=str(u / "empty.jsonl"))],
            ("empty.jsonl is empty", "Fix: Put at least one sample"),
            gui=start, gui_values=form(w, data__path=str(u / "empty.jsonl")), gui_status="train/status",
            gui_needles=("is empty",)),
        Row("dataset invalid JSON", ["train", v("c_badjson.yaml", data__path=str(u / "bad.json"))],
            ("bad.json is not valid JSON", "line 2, column 11", "Fix:"),
            gui=start, gui_values=form(w, data__path=str(u / "bad.json")), gui_status="train/status",
            gui_needles=("line 2, column 11",)),
        Row("dataset not UTF-8", check("latin1.jsonl"), ("latin1.jsonl is not UTF-8", "line 1, column 15", "Fix:"),
            sub=True, gui=start, gui_values=form(w, data__path=str(u / "latin1.jsonl")), gui_status="train/status",
            gui_needles=("UTF-8",)),
        Row("dataset of an unknown kind", ["train", v("c_xlsx.yaml", data__path=str(u / "data.xlsx"))],
            ("'.xlsx' are not a dataset format", "Fix: Use one of .json")),
        Row("columns do not fit the map_fn", check("qa.jsonl", "--map-fn", "alpaca"),
            ("needs column(s) instruction, output", "Columns present: question, answer", "Fix:"),
            gui=preview, gui_values=form(w, data__path=str(u / "qa.jsonl"), data__map_fn="alpaca"),
            gui_status="data/status", gui_needles=("instruction",)),
        Row("only empty outputs", check("empty_out.jsonl"), ("all 2 row(s) were dropped: 2 empty answer", "Fix:"),
            gui=preview, gui_values=form(w, data__path=str(u / "empty_out.jsonl")), gui_status="data/status",
            gui_needles=("empty answer",)),
        Row("only conversations ending on a user turn", check("ends_on_user.jsonl"),
            ("conversation ends on a user turn", "Fix:"), gui=preview,
            gui_values=form(w, data__path=str(u / "ends_on_user.jsonl"), data__map_fn="auto"),
            gui_status="data/status", gui_needles=("ends on a user turn",)),
        Row("every row dropped, found by the trainer", ["train", v("c_eo.yaml", data__path=str(u / "empty_out.jsonl")),
                                                       "--work-dir", str(w["root"] / BACKGROUND / "dropped")],
            ("all 2 row(s) were dropped",), sub=True, fix_on_advice=True),
        # ---- issue 9 part B: data that crashed (RecursionError) or misled
        Row("100,000-deep nested JSON", check("deep.json"), ("deep.json nests lists or objects more than about",
                                                            "Fix: Rows are objects of text fields"), sub=True,
            gui=preview, gui_values=form(w, data__path=str(u / "deep.json")), gui_status="data/status",
            gui_needles=("nests lists or objects",)),
        Row("a JSON list of strings", check("strings.json"), ("strings.json is a list of strings, not of rows",
                                                             "Fix: Write each row as an object"),
            gui=preview, gui_values=form(w, data__path=str(u / "strings.json")), gui_status="data/status",
            gui_needles=("list of strings",)),
        Row("a ragged CSV", check("ragged.csv"), ("could not be read as CSV", "Expected 2 fields in line 4, saw 5",
                                                 "Fix: Every line needs as many fields as the header"),
            gui=preview, gui_values=form(w, data__path=str(u / "ragged.csv")), gui_status="data/status",
            gui_needles=("line 4, saw 5",)),
        Row("a lone surrogate escape", check("surrogate.jsonl"), ("row 1, line 2: 'input' holds invalid text", "Fix:"),
            gui=preview, gui_values=form(w, data__path=str(u / "surrogate.jsonl")), gui_status="data/status",
            gui_needles=("invalid text",)),
        Row("NaN as an answer", check("nan.jsonl"), ("row 1, line 2: 'output' holds NaN, which is not text", "Fix:"),
            gui=preview, gui_values=form(w, data__path=str(u / "nan.jsonl")), gui_status="data/status",
            gui_needles=("NaN, which is not text",)),
        Row("a list as message content", check("list_content.jsonl"),
            ("2 a message's 'content' is a list, not text (first: row 0)", "Fix:"),
            gui=preview, gui_values=form(w, data__path=str(u / "list_content.jsonl"), data__map_fn="auto"),
            gui_status="data/status", gui_needles=("is a list, not text",)),
        Row("ORPO prompts that fill max_length", check("long_prompts.jsonl", "--stage", "orpo", "--max-length", "64"),
            ("3 the prompt fills max_length (64 tokens)", "Fix: Raise data.max_length"),
            gui=preview, gui_values=form(w, data__path=str(u / "long_prompts.jsonl"), data__map_fn="auto",
                                         method__stage="orpo", data__max_length=64),
            gui_status="data/status", gui_needles=("the prompt fills max_length",)),
        Row("a model that needs its own code (train)",
            ["train", v("c_remote.yaml", model__name_or_path=str(w["remote"])),
             "--work-dir", str(w["root"] / BACKGROUND / "remote")],
            ("needs its own Python code", "model.trust_remote_code"), sub=True, fix_on_advice=True),
        Row("a model that needs its own code (chat)", ["chat", str(w["remote"])],
            ("needs its own Python code", "Fix: Only if you trust", "Trust remote code", "--trust-remote-code"),
            gui=chat_load, gui_values=chat_values(w, chat__base=str(w["remote"])), gui_status="chat/status",
            gui_needles=("Trust remote code",)),
        # ---- map_fn / columns
        Row("unknown map_fn", ["train", v("c_mapfn.yaml", data__map_fn="alpacca")],
            ("unknown map_fn 'alpacca'", "Fix: Did you mean: alpaca"),
            gui=start, gui_values=form(w, data__map_fn="alpacca"), gui_status="train/status",
            gui_needles=("unknown map_fn",)),
        Row("a mapped column that is not in the file", check("qa.jsonl", "--columns", "input=question,output=answr"),
            ("needs column(s) answr", "Fix:"), gui=preview,
            gui_values=form(w, data__path=str(u / "qa.jsonl"), data__map_fn="columns",
                            **{"data/col_input": "question", "data/col_output": "answr"}),
            gui_status="data/status", gui_needles=("answr",)),
        Row("a column mapping without '='", check("qa.jsonl", "--columns", "input"),
            ("'input' is not ROLE=COLUMN", "Fix: Example: --columns input=question")),
        # ---- templates
        Row("unknown template", ["train", v("c_tpl.yaml", data__template="qwen_chatt")],
            ("unknown prompt template 'qwen_chatt'", "Fix: Did you mean: qwen_chat"), sub=True,
            gui=start, gui_values=form(w, data__template="qwen_chatt"), gui_status="train/status",
            gui_needles=("unknown prompt template",)),
        # ---- model paths
        Row("model folder missing", ["model-info", str(u / "no-such-model")], ("no-such-model does not exist", "Fix:"),
            gui=facts, gui_values=form(w, model__name_or_path=str(u / "no-such-model")), gui_status="model/status",
            gui_needles=("does not exist",)),
        Row("model folder without config.json", ["train", v("c_noconf.yaml", model__name_or_path=str(u / "no_config"))],
            ("no_config has no config.json", "Fix: Point at the folder"),
            gui=start, gui_values=form(w, model__name_or_path=str(u / "no_config")), gui_status="train/status",
            gui_needles=("config.json",)),
        Row("model path is a file (model-info)", ["model-info", str(u / "weights.bin")],
            ("weights.bin is a file, not a model folder", "Fix: Give the folder"), sub=True,
            gui=facts, gui_values=form(w, model__name_or_path=str(u / "weights.bin")), gui_status="model/status",
            gui_needles=("is a file",)),
        Row("model path is a file (train)", ["train", v("c_file.yaml", model__name_or_path=str(u / "weights.bin"))],
            ("weights.bin is a file, not a model folder", "Fix:"),
            gui=start, gui_values=form(w, model__name_or_path=str(u / "weights.bin")), gui_status="train/status",
            gui_needles=("is a file",)),
        Row("model path is a file (chat)", ["chat", str(u / "weights.bin")], ("is a file, not a model folder", "Fix:"),
            gui=chat_load, gui_values=chat_values(w, chat__base=str(u / "weights.bin")), gui_status="chat/status",
            gui_needles=("is a file",)),
        Row("a .gguf that is not GGUF", ["import-gguf", str(u / "fake.gguf"), str(u / "imported")],
            ("not a GGUF file (wrong magic bytes)", "Fix:"),
            gui=partial(model_cb.import_gguf, settings=s), gui_values={"model/gguf_path": str(u / "fake.gguf")},
            gui_status="model/status", gui_needles=("not a GGUF file",)),
        # ---- configs
        Row("YAML with a wrong type", ["train", str(u / "types.yaml")],
            ("training.batch_size", "must be a whole number, got 'lots'", "Fix: Write a number"), sub=True,
            gui=load_yaml, gui_values={"top/config_path": str(u / "types.yaml")}, gui_status="top/status",
            gui_needles=("whole number",)),
        Row("YAML with an unknown key", ["train", str(u / "unknown.yaml")],
            ("unknown field 'training.learnin_rate'", "Fix: Did you mean: learning_rate"), sub=True,
            gui=load_yaml, gui_values={"top/config_path": str(u / "unknown.yaml")}, gui_status="top/status",
            gui_needles=("learnin_rate",)),
        Row("YAML that does not parse", ["estimate", str(u / "tabs.yaml")], ("not valid YAML", "line 2", "Fix:"),
            gui=load_yaml, gui_values={"top/config_path": str(u / "tabs.yaml")}, gui_status="top/status",
            gui_needles=("not valid YAML",)),
        Row("impossible values", ["train", str(u / "impossible.yaml")],
            ("training.learning_rate: must be > 0, got -1.0", "Fix:", "training.num_epochs"),
            gui=start, gui_values=form(w, training__learning_rate=-1, training__num_epochs=0, training__max_steps=0),
            gui_status="train/status", gui_needles=("training.learning_rate", "training.num_epochs")),
        Row("impossible --set override", ["train", str(u / "good.yaml"), "--set", "training.batch_size=-3"],
            ("training.batch_size: must be >= 1, got -3", "Fix:")),
        # ---- values that passed validation and then crashed the trainer, or were taken silently (issue 9)
        Row("num_epochs .inf", ["train", str(u / "good.yaml"), "--set", "training.num_epochs=.inf",
                                "training.max_steps=-1", "--print-command"],
            ("training.num_epochs", "must be a finite number, got inf", "Fix:"),
            gui=start, gui_values=form(w, training__num_epochs=float("inf"), training__max_steps=-1),
            gui_status="train/status", gui_needles=("training.num_epochs", "finite")),
        Row("seed -1", ["train", str(u / "good.yaml"), "--seed", "-1"],
            ("training.seed", "must be from 0 to 4294967295, got -1", "Fix:"), sub=True,
            gui=start, gui_values=form(w, training__seed=-1), gui_status="train/status",
            gui_needles=("training.seed",)),
        Row("DeepSpeed JSON with stage 7", ["train", str(u / "good.yaml"), "--deepspeed", str(u / "ds_stage7.json")],
            ("distributed.deepspeed", "zero_optimization.stage is 7",
             "Fix: Set zero_optimization.stage to 0, 1, 2 or 3"),
            gui=start, gui_values=form(w, distributed__deepspeed=str(u / "ds_stage7.json")), gui_status="train/status",
            gui_needles=("zero_optimization.stage is 7",)),
        Row("run folder is a file", ["train", str(u / "good.yaml"), "--work-dir", str(u / "weights.bin")],
            ("output.run_dir", "weights.bin is a file, not a folder", "Fix:"), sub=True,
            gui=start, gui_values=form(w, output__run_dir=str(u / "weights.bin")), gui_status="train/status",
            gui_needles=("weights.bin",)),
        Row("batch size 10^12", ["train", str(u / "good.yaml"), "--set", "training.batch_size=1000000000000"],
            ("training.batch_size", "at most 4096", "Fix:"),
            gui=start, gui_values=form(w, training__batch_size=10**12), gui_status="train/status",
            gui_needles=("training.batch_size", "4096")),
        Row("eval split as big as the data", ["train", str(u / "good.yaml"), "--set", "data.eval_size=4"],
            ("data.eval_size", "4 evaluation row(s) out of 4", "Fix:"),
            gui=start, gui_values=form(w, data__eval_size=4), gui_status="train/status",
            gui_needles=("data.eval_size", "nothing to train on")),
        Row("unknown section in --set", ["train", str(u / "good.yaml"), "--set", "trainig.batch_size=3"],
            ("unknown section 'trainig'", "Fix: Did you mean: training")),
        Row("unknown preset", ["train", "qwen2_7b_instruct_qlora_alpaca_e"],
            ("unknown preset 'qwen2_7b_instruct_qlora_alpaca_e'", "Fix: Did you mean: qwen2_7b_instruct_qlora_alpaca_e3"),
            sub=True, gui=partial(config_cb.apply_preset, settings=s),
            gui_values={"model/preset": "qwen2_7b_instruct_qlora_alpaca_e", "top/lang": "en"},
            gui_status="model/status", gui_needles=("unknown preset",)),
        Row("a bad flag value", ["estimate", str(u / "good.yaml"), "--gpu-gb", "-1"],
            ("--gpu-gb must be positive", "Fix:")),
        # ---- adapter / base mismatch
        Row("adapter trained on another base", ["convert", "merge", str(w["narrow"]), str(w["run"]),
                                                str(u / "merged"), "--quiet"],
            ("does not fit base", "hidden_size 64 vs 32", "Fix: Pass the base model the adapter was trained on"),
            sub=True, gui=export,
            gui_values={**exp, "export/mode": "merge", "export/base": str(w["narrow"]),
                        "export/out_dir": str(u / "merged-gui")},
            gui_status="export/status", gui_needles=("does not fit base",)),
        # ---- output folders that hold something
        Row("export into a non-empty folder", ["convert", "to-hf", str(w["run"]), str(u / "export"), "--quiet"],
            ("export exists and is not empty", "Fix: Choose a new folder, or pass --overwrite"), sub=True,
            gui=export, gui_values={**exp, "export/mode": "convert", "export/out_dir": str(u / "export")},
            gui_status="export/status", gui_needles=("is not empty",)),
        Row("train afresh in a folder with checkpoints", ["train", str(u / "good.yaml"), "--work-dir", str(w["run"])],
            ("already holds checkpoints", "Fix: Resume it"), sub=True,
            gui=start, gui_values=form(w, output__run_dir=str(w["gui_run"])), gui_status="train/status",
            gui_needles=("already holds checkpoints",)),
        Row("copy a preset over an existing copy", ["copy-cfg", "smollm2_135m_instruct_lora_identity_e3",
                                                    str(u / "copies")], ("exists", "Fix:")),
        # ---- chat parameters out of range
        Row("chat temperature < 0", ["chat", str(w["tiny"]), "--temperature", "-0.5"],
            ("temperature must be between 0 and 10, got -0.5", "Fix:"), sub=True,
            gui=chat_load, gui_values=chat_values(w, chat__temperature=-0.5), gui_status="chat/status",
            gui_needles=("temperature",)),
        Row("chat top_p > 1", ["chat", str(w["tiny"]), "--top-p", "1.5"], ("top_p must be in (0, 1]", "Fix:"),
            gui=chat_load, gui_values=chat_values(w, chat__top_p=1.5), gui_status="chat/status", gui_needles=("top_p",)),
        Row("chat max_new_tokens 0", ["chat", str(w["tiny"]), "--max-new-tokens", "0"],
            ("max_new_tokens must be a whole number >= 1, got 0", "Fix:"),
            gui=chat_load, gui_values=chat_values(w, chat__max_new_tokens=0), gui_status="chat/status",
            gui_needles=("max_new_tokens",)),
        Row("chat top_k < 0", ["chat", str(w["tiny"]), "--top-k", "-1"], ("top_k must be a whole number >= 0", "Fix:"),
            gui=chat_load, gui_values=chat_values(w, chat__top_k=-1), gui_status="chat/status", gui_needles=("top_k",)),
        Row("chat repetition_penalty 0", ["chat", str(w["tiny"]), "--repetition-penalty", "0"],
            ("repetition_penalty", "Fix:"),
            gui=chat_load, gui_values=chat_values(w, chat__repetition_penalty=0), gui_status="chat/status",
            gui_needles=("repetition_penalty",)),
        Row("chat bits 3", ["chat", str(w["tiny"]), "--bits", "3"],
            ("argument --bits: invalid choice: 3 (choose from 4, 8)", "Fix: see `tunesmith chat --help`"),
            sub=True),
        Row("status of a folder that is not a run", ["status", str(u / "no_config")],
            ("is not a run folder", "Fix:")),
    ]


# ---- running the rows ----------------------------------------------------------------------------------

_HASHES: dict[tuple, str] = {}
BACKGROUND = "background-runs"  # a run that a background row starts writes here while other rows are checked


def snapshot(folder: Path, skip: str = "") -> dict[str, str]:
    """{path: sha256} of every file under ``folder`` but ``folder/skip`` (hashes cached by inode, size, mtime)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if skip and path.is_relative_to(folder / skip):
            continue
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
            if key not in _HASHES:
                _HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path)] = _HASHES[key]
    return out


def lost_or_changed(before: dict, after: dict) -> list[str]:
    return [p for p, digest in before.items() if after.get(p) != digest]


def run_subprocess(argv: list[str]) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "tunesmith", *argv], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=240)
    return proc.returncode, proc.stdout, proc.stderr


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    from tunesmith.core.cli import main

    out, err = io.StringIO(), io.StringIO()
    stdin, sys.stdin = sys.stdin, io.StringIO("")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse
                code = exc.code
    finally:
        sys.stdin = stdin
    return code, out.getvalue(), err.getvalue()


def cli_problem(row: Row, code, stdout: str, stderr: str) -> str | None:
    """Why the CLI's answer to ``row`` is not one clear error with a fix (None when it is)."""
    if code in (0, None):
        return f"exit code {code}"
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if len(errors) != 1:
        return f"{len(errors)} error lines in {stderr[-800:]!r}"
    if "Traceback" in stderr + stdout or '  File "' in stderr:
        return f"a traceback: {stderr[-800:]!r}"
    missing = [n for n in row.needles if n not in errors[0]]
    if missing:
        return f"{missing} not in {errors[0]!r}"
    fix = [line for line in stderr.splitlines() if line.startswith("advice:")] if row.fix_on_advice else \
        [errors[0]] if "Fix:" in errors[0] else []
    return None if fix else f"no fix given: {stderr[-500:]!r}"


def gui_problem(row: Row) -> str | None:
    from tunesmith.app.registry import guarded

    out = guarded(row.gui, row.gui_status)(row.gui_values)
    shown = out.get(row.gui_status, "") if isinstance(out, dict) else ""
    if "ts-error" not in shown:
        return f"no error shown in {row.gui_status}: {str(out)[:300]!r}"
    if "internal error" in shown:
        return f"a crash, not a user message: {shown[:300]!r}"
    missing = [n for n in row.gui_needles if n.lower() not in shown.lower()]
    if missing:
        return f"{missing} not in {shown[:400]!r}"
    if "Fix:" not in shown and "<li>" not in shown:
        return f"no fix given: {shown[:300]!r}"
    return None


@pytest.mark.slow  # over 2.5 s: kept out of make test-fast
def test_every_bad_input_gives_one_clear_error_and_changes_nothing(world):
    """Every row in the GUI, and the CLI in this process for the rows that need no subprocess of their own
    (the subprocess rows, a few seconds each, are the slow test below)."""
    table = rows(world)
    assert len(table) >= 25 and sum(r.sub for r in table) >= 10
    assert len({r.name for r in table}) == len(table)
    root = world["root"]
    failures: list[str] = []
    before_all = snapshot(root)
    for row in table:
        before = snapshot(root)
        if not row.sub:
            problem = cli_problem(row, *run_in_process(row.argv))
            if problem:
                failures.append(f"CLI {row.name}: {problem}")
        if row.gui is not None:
            problem = gui_problem(row)
            if problem:
                failures.append(f"GUI {row.name}: {problem}")
        lost = lost_or_changed(before, snapshot(root))
        if lost:
            failures.append(f"{row.name}: changed or deleted {lost[:5]}")
    lost = lost_or_changed(before_all, snapshot(root))
    assert not lost, f"files the user had were changed or deleted: {lost[:10]}"
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_every_bad_input_in_a_cli_subprocess_gives_one_clear_error_and_changes_nothing(world):
    """The rows that need a real ``python -m tunesmith`` process (signals, stdin, a fresh import), two at a time."""
    table = [r for r in rows(world) if r.sub]
    root = world["root"]
    before_all = snapshot(root)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = {r.name: pool.submit(run_subprocess, r.argv) for r in table}
        failures = [f"CLI (subprocess) {row.name}: {problem}" for row in table
                    if (problem := cli_problem(row, *pending[row.name].result()))]
    lost = lost_or_changed(before_all, snapshot(root))
    assert not lost, f"files the user had were changed or deleted: {lost[:10]}"
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_debug_shows_the_traceback(world):
    """The same bad input with --debug: the traceback (for a bug report) instead of the one line."""
    code, stdout, stderr = run_subprocess(["--debug", "train", str(world["user"] / "types.yaml")])
    assert code != 0
    assert "Traceback (most recent call last)" in stderr and "ConfigError" in stderr
    assert "must be a whole number, got 'lots'" in stderr
