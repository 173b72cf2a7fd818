"""The app builds, every RunConfig field has a labelled widget in both languages, and start-up
imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.app.form import form_ids
from tunesmith.app.locales import LOCALES, props
from tunesmith.app.settings import AppSettings

ROOT = Path(__file__).resolve().parent.parent


def test_build_registers_every_form_field_with_labels(tmp_path):
    from tunesmith.app.ui import build_app

    settings = AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path)})
    demo, reg = build_app(settings)
    ids = set(reg.ids())
    missing = [i for i in form_ids() if i not in ids]
    assert not missing, missing
    for elem_id in form_ids():
        for lang in ("en", "zh"):
            assert props(elem_id, lang).get("label"), (elem_id, lang)
        assert reg[elem_id].label == props(elem_id, "en")["label"]
    unknown = sorted(k for k in LOCALES["en"] if k not in ids)
    assert not unknown, f"locale entries for widgets that do not exist: {unknown}"
    assert reg["train/start_btn"].value == "Start"
    # the start values are the GUI default config
    assert reg["model.name_or_path"].value == "embedded:SmolLM2-135M-Instruct"
    assert reg["method.finetuning"].value == "lora"


def test_chinese_at_start(tmp_path):
    from tunesmith.app.ui import build_app

    _, reg = build_app(AppSettings.from_env({"TUNESMITH_HOME": str(tmp_path)}, lang="zh"))
    assert reg["train/start_btn"].value == "开始" and reg["training.learning_rate"].label == "学习率"


@pytest.mark.slow  # over 2.5 s: kept out of make test-fast
def test_app_import_pulls_in_no_heavy_library():
    heavy = "('torch', 'transformers', 'datasets', 'peft', 'trl', 'deepspeed')"
    code = f"import sys, tunesmith.app.ui, tunesmith.app.launch, tunesmith.cli; print(','.join(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.slow
def test_warm_up_imports_the_heavy_libraries_in_the_background_and_callbacks_wait_for_it():
    """After start-up a background thread imports what the first Load/preview needs; a callback that
    asks for transformers meanwhile gets it whole (the lazy module is never seen half-imported)."""
    code = ("import sys, threading\n"
            "from tunesmith.app.callbacks.common import WARM_MODULES, import_transformers_once, warm_up_in_background\n"
            "before = [m for m in WARM_MODULES if m in sys.modules]\n"
            "thread = warm_up_in_background(0)\n"
            "import_transformers_once()\n"
            "from transformers import AutoTokenizer, AutoModelForCausalLM\n"
            "thread.join(300)\n"
            "print(thread.name, before, [m for m in WARM_MODULES if m not in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["tunesmith-warm-up", "[]", "[]"]


@pytest.mark.slow
def test_warm_up_imports_the_bundled_model_once_the_libraries_are_in(monkeypatch, tmp_path):
    """The studio starts on the bundled model: the warm-up imports it, so the first estimate or preview
    does not spend ~25 s converting the GGUF; with the flag off (or no bundled GGUF) it leaves it alone."""
    import tunesmith.core.gguf_import as gguf_import
    from tunesmith.app.callbacks.common import warm_up_in_background
    from tunesmith.core import paths

    calls = []
    monkeypatch.setattr(gguf_import, "ensure_embedded_model", lambda: calls.append("import") or tmp_path)
    monkeypatch.setattr(paths, "embedded_gguf_path", lambda: tmp_path / "model.gguf")
    warm_up_in_background(0).join(300)
    warm_up_in_background(0, embedded=False).join(300)
    assert calls == ["import"]
    monkeypatch.setattr(paths, "embedded_gguf_path", lambda: None)
    warm_up_in_background(0).join(300)
    assert calls == ["import"]
