"""Shared fixtures: the real SmolLM2 tokenizer, a tiny random Llama, and the ../shared datasets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (run on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """The real SmolLM2-135M-Instruct tokenizer folder (imported from the embedded GGUF once)."""
    from tunesmith.core.gguf_import import ensure_embedded_tokenizer

    try:
        return ensure_embedded_tokenizer()
    except Exception as exc:  # package missing on a bare machine
        pytest.skip(f"embedded SmolLM2 tokenizer unavailable: {exc}")


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A saved 2-layer width-64 random Llama using the SmolLM2 tokenizer. Treat it as read-only."""
    from tiny import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tokenizer_dir)


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The real SmolLM2-135M-Instruct, imported into the per-user cache (about 30 s the first time)."""
    from tunesmith.core.gguf_import import ensure_embedded_model

    try:
        return ensure_embedded_model()
    except Exception as exc:
        pytest.skip(f"embedded SmolLM2 unavailable: {exc}")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, embedded_model_dir):
    """(cfg, status) of the `python -m tunesmith demo` run: SmolLM2 learns it is "Melody" (minutes on CPU; once a session,
    shared by the demo test and the GGUF export test)."""
    from tunesmith.core.train.demo import demo_config
    from tunesmith.core.train.launcher import run_here

    reuse = os.environ.get("TUNESMITH_TEST_DEMO_RUN")  # a finished demo run folder: skip the minutes of training
    if reuse:
        from tunesmith.core.config import RunConfig
        from tunesmith.core.train.rundir import RunDir

        cfg = RunConfig.load(Path(reuse) / "config.yaml")
        cfg.output.run_dir = str(Path(reuse).resolve())  # the folder may have been copied from elsewhere
        return cfg, RunDir(reuse).read_status()
    cfg = demo_config(str(tmp_path_factory.mktemp("demo") / "demo"))
    return cfg, run_here(cfg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (present in CI and on dev machines, absent in a bare clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the project")
    return SHARED_DATA


@pytest.fixture
def bystander():
    """A process of the same user that is no run's trainer, in a process group of its own (as the tester's sleep)."""
    import subprocess

    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()
