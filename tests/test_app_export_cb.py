"""Export tab callbacks on a hand-made LoRA run of the tiny model: lists, merge and convert with
progress, never overwriting an existing folder."""

from __future__ import annotations

import pytest

from tunesmith.app.callbacks import export_cb
from tunesmith.app.settings import AppSettings
from tunesmith.core.errors import UserError


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir):
    """RUNS/lora-run with checkpoints/checkpoint-2 holding a LoRA adapter of the tiny model."""
    from tiny import make_lora_run

    home = tmp_path_factory.mktemp("export-home")
    run_dir = make_lora_run(home, tiny_model_dir)
    settings = AppSettings.from_env({"TUNESMITH_HOME": str(home)}, extra_roots=(str(tiny_model_dir),))
    settings.ensure_dirs()
    return settings, run_dir, tiny_model_dir


def test_lists_runs_and_checkpoints_and_fills_the_base(run):
    settings, run_dir, tiny = run
    out = export_cb.refresh({"export/run": None}, settings)
    assert out["export/run"]["value"] == str(run_dir.resolve())
    assert out["export/checkpoint"] == {"choices": ["latest", "checkpoint-2"], "value": "latest"}
    assert out["export/base"] == str(tiny)


@pytest.mark.slow  # over 2.5 s: kept out of make test-fast
def test_merge_then_convert_with_progress(run):
    settings, run_dir, tiny = run
    values = {"export/run": str(run_dir), "export/checkpoint": "checkpoint-2", "export/mode": "merge",
              "export/base": str(tiny), "export/dtype": "fp32", "export/shard": "1GB", "top/lang": "en"}
    updates = list(export_cb.export(values, settings))
    assert updates[0]["export/cmd"].startswith("python -m tunesmith convert merge")
    fractions = [float(u["export/progress"].split('data-frac="')[1].split('"')[0])
                 for u in updates if "export/progress" in u]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 4
    merged = settings.exports_dir / "lora-run-checkpoint-2-merge"
    assert updates[-1]["export/last"] == str(merged)
    assert (merged / "config.json").is_file() and list(merged.glob("*.safetensors"))

    again = list(export_cb.export(values, settings))  # a second export never overwrites the first
    assert again[-1]["export/last"] == str(merged) + "-1"

    converted = list(export_cb.export({**values, "export/mode": "convert", "export/checkpoint": "latest"}, settings))
    out = converted[-1]["export/last"]
    assert out.endswith("lora-run-convert") and (settings.exports_dir / "lora-run-convert" / "adapter_config.json").is_file()


def test_typed_output_folder_is_checked(run):
    settings, run_dir, tiny = run
    values = {"export/run": str(run_dir), "export/mode": "convert", "export/out_dir": "/etc/out", "top/lang": "en"}
    with pytest.raises(UserError, match="outside the folders"):
        list(export_cb.export(values, settings))
    with pytest.raises(UserError, match="not in"):
        list(export_cb.export({**values, "export/out_dir": "", "export/checkpoint": "../../etc"}, settings))


def test_finished_export_names_its_output_once(tmp_path):
    # the bar and the status both said "Done: <path>", so the page printed it twice
    out = tmp_path / "merged"
    updates = list(export_cb.run_with_progress(lambda progress: (progress(0.5, "half"), out)[1], "en", poll=0.01))
    final = updates[-1]
    assert final["export/last"] == str(out)
    page = final["export/progress"] + final["export/status"]
    assert page.count("Done:") == 1
    assert ">Finished<" in final["export/progress"]
