"""Tunesmith installs like any tool: the wheel holds one top-level package with its presets and demo data,
and its ``tunesmith`` command works from a folder that is not the checkout.

The fresh venv reuses this venv's libraries (torch, transformers, ...) through a ``.pth`` line instead of
downloading them again; the wheel itself is installed with ``--no-deps`` so only our files are new.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(ROOT / "tunesmith", src / "tunesmith", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(ROOT / name, src / name)
    # no build isolation: setuptools is already here, and the build must not need the network
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = list(out.glob("tunesmith-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; returns its bin folder."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "reuse_the_test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env_dir / "bin"


def test_the_wheel_holds_one_package_with_its_presets_and_demo_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"tunesmith"}, top
    for needed in ("tunesmith/cli.py", "tunesmith/core/cli/__init__.py", "tunesmith/app/ui.py",
                   "tunesmith/presets/smollm2_135m_instruct_lora_identity_e3.yaml",
                   "tunesmith/presets/deepspeed/zero2.json", "tunesmith/presets/model_configs.json",
                   "tunesmith/assets/identity.json", "tunesmith/assets/colors.jsonl"):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "tunesmith = tunesmith.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "tunesmith"), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TUNESMITH_HOME": str(cwd / "home")})


def test_the_installed_command_works_outside_the_checkout(installed, tmp_path):
    where = subprocess.run([str(installed / "python"), "-c", "import tunesmith; print(tunesmith.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(installed.parent), f"imported from {where}, not the fresh venv"
    for old in ("core", "app"):
        found = subprocess.run([str(installed / "python"), "-c", f"import {old}"], cwd=tmp_path, capture_output=True)
        assert found.returncode != 0, f"a top-level '{old}' module is importable"

    helped = _run(installed, "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: tunesmith")
    for verb in ("train", "convert", "chat", "serve", "evaluate", "studio", "list-cfg"):
        assert f"    {verb}" in helped.stdout, verb

    listed = _run(installed, "list-cfg", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "smollm2_135m_instruct_lora_identity_e3" in listed.stdout.split()
    assert len(listed.stdout.split()) >= 40

    copied = _run(installed, "copy-cfg", "smollm2_135m_instruct_lora_identity_e3", str(tmp_path), cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    text = (tmp_path / "smollm2_135m_instruct_lora_identity_e3_copy.yaml").read_text()
    assert "identity.json" in text

    studio = _run(installed, "studio", "--help", cwd=tmp_path)
    assert studio.returncode == 0 and studio.stdout.startswith("usage: tunesmith studio"), studio.stderr


def test_the_bundled_demo_data_is_read_from_the_installed_package(installed, tmp_path, tokenizer_dir):
    """The identity preset names its data relative to the package, so the installed copy finds its own."""
    code = ("from tunesmith.core.presets import load_config; "
            "print(load_config('smollm2_135m_instruct_lora_identity_e3').data.path)")
    data = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert data.returncode == 0, data.stderr
    data = Path(data.stdout.strip())
    assert data.is_relative_to(installed.parent) and data.name == "identity.json" and data.is_file(), data
    proc = _run(installed, "check-dataset", "--data", str(data), "--tokenizer", str(tokenizer_dir), "--json",
                "--show", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    samples = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(samples) == 2 and all(s["input_ids"] and any(t != -100 for t in s["labels"]) for s in samples)
