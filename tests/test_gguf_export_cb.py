"""Export tab, GGUF choice: progress as it goes, then the file, its size and the Modelfile (no browser)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir):
    """RUNS/lora-run/checkpoints/checkpoint-2: a LoRA adapter of the tiny model (made by hand, no training)."""
    from tunesmith.app.settings import AppSettings
    from tiny import make_lora_run

    home = tmp_path_factory.mktemp("gguf-home")
    run_dir = make_lora_run(home, tiny_model_dir, "data.template=chat_template")
    settings = AppSettings.from_env({"TUNESMITH_HOME": str(home)}, extra_roots=(str(tiny_model_dir),))
    settings.ensure_dirs()
    return settings, run_dir


@pytest.mark.slow  # over 2.5 s: kept out of make test-fast
def test_gguf_export_shows_progress_the_file_and_its_size(run):
    from tunesmith.app.callbacks import export_cb

    settings, run_dir = run
    values = {"export/run": str(run_dir), "export/checkpoint": "latest", "export/mode": "gguf",
              "export/quant": "q8_0", "export/out_dir": "", "top/lang": "en"}
    updates = list(export_cb.export(values, settings))
    cmd = updates[0]["export/cmd"]
    assert cmd.startswith(f"python -m tunesmith convert gguf {run_dir.resolve()} ") and cmd.endswith("--quant q8_0")
    bars = [u["export/progress"] for u in updates if "export/progress" in u]
    fractions = [float(b.split('data-frac="')[1].split('"')[0]) for b in bars]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 3
    last = updates[-1]
    gguf = run_dir.resolve().parent.parent / "exports" / "lora-run-gguf" / "lora-run-q8_0.gguf"
    assert last["export/last"] == str(gguf) and gguf.is_file() and (gguf.parent / "Modelfile").is_file()
    size = f"{gguf.stat().st_size / 2**20:.1f} MiB"
    assert f"({size})" in last["export/status"] and "Modelfile" in last["export/status"]
    assert "chat/merged" not in last  # a GGUF file is not a folder the Chat tab loads
    zh = list(export_cb.export({**values, "export/quant": "f16", "top/lang": "zh"}, settings))[-1]
    assert "旁边附有 Modelfile" in zh["export/status"] and zh["export/last"].endswith("lora-run-f16.gguf")


def test_unknown_gguf_type_is_refused_before_work(run):
    from tunesmith.app.callbacks import export_cb
    from tunesmith.core.errors import UserError

    settings, run_dir = run
    with pytest.raises(UserError, match="unknown GGUF type"):
        list(export_cb.export({"export/run": str(run_dir), "export/mode": "gguf", "export/quant": "q9"}, settings))
