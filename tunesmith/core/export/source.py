"""Finding and describing what to export: a run directory, a checkpoint folder, or an adapter folder.

A run directory resolves to its newest complete checkpoint. A checkpoint is either a PEFT adapter
(``adapter_config.json`` + ``adapter_model.safetensors``), a full model (``config.json`` + weights),
and may carry DeepSpeed ZeRO shards (``global_stepN/``) that hold the authoritative fp32 weights.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.core.errors import UserError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


@dataclass
class CheckpointInfo:
    """What a checkpoint folder holds (see :func:`inspect_checkpoint`)."""

    path: Path
    kind: str                                   # "adapter" (LoRA/QLoRA) or "full"
    run_dir: Path | None = None                 # the run it belongs to, when it sits in RUN/checkpoints/
    config: object | None = None                # tunesmith.core.config.RunConfig from config.yaml, when present
    adapter_config: dict = field(default_factory=dict)
    deepspeed_tag: str | None = None            # "global_stepN" when ZeRO shards are present
    has_weights: bool = True                    # consolidated HF weights present (ZeRO-3 may lack them)

    @property
    def step(self) -> int | None:
        match = CHECKPOINT_RE.match(self.path.name)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str:
        if self.config is not None:
            return self.config.method.finetuning
        return "lora" if self.kind == "adapter" else "full"

    @property
    def base_model(self) -> str:
        """Base model as the run named it (may be ``embedded:...`` or a hub id)."""
        if self.config is not None:
            return self.config.model.name_or_path
        return self.adapter_config.get("base_model_name_or_path") or ""


def is_run_dir(path: Path) -> bool:
    return (path / "checkpoints").is_dir() or ((path / "config.yaml").is_file() and (path / "metrics.jsonl").exists())


def deepspeed_tag(folder: Path) -> str | None:
    """The ZeRO shard folder name of a checkpoint (from ``latest``, else the highest global_stepN)."""
    latest = folder / "latest"
    if latest.is_file():
        tag = latest.read_text(encoding="utf-8").strip()
        if (folder / tag).is_dir():
            return tag
    steps = sorted((int(p.name[len("global_step"):]), p.name) for p in folder.glob("global_step*")
                   if p.is_dir() and p.name[len("global_step"):].isdigit() and any(p.glob("*model_states.pt")))
    return steps[-1][1] if steps else None


def looks_complete(folder: Path) -> bool:
    """True when a checkpoint holds weights of some kind (temp names from crashed saves never match)."""
    if (folder / "adapter_config.json").is_file():
        return any((folder / n).is_file() for n in ADAPTER_WEIGHTS) or deepspeed_tag(folder) is not None
    if (folder / "config.json").is_file():
        return any((folder / n).is_file() for n in MODEL_WEIGHTS) or deepspeed_tag(folder) is not None
    return False


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / "checkpoints"
    found = []
    for p in root.iterdir() if root.is_dir() else ():
        match = CHECKPOINT_RE.match(p.name)
        if match and p.is_dir() and looks_complete(p):
            found.append((int(match.group(1)), p))
    return [p for _, p in sorted(found)]


def resolve_checkpoint(src: str | Path) -> tuple[Path, Path | None]:
    """Map a run dir (-> newest complete checkpoint) or checkpoint folder to (checkpoint, run_dir)."""
    path = Path(src).expanduser().resolve()
    if not path.exists():
        raise UserError(f"{path} does not exist.", "Give a run folder (work_dirs/NAME) or one of its "
                        "checkpoints/checkpoint-N folders.")
    if not path.is_dir():
        raise UserError(f"{path} is a file, not a folder.", "Give a run folder or a checkpoint folder.")
    if path.name == "checkpoints" and is_run_dir(path.parent):
        path = path.parent
    if is_run_dir(path) and not looks_complete(path):
        checkpoints = list_checkpoints(path)
        if not checkpoints:
            raise UserError(f"run {path} has no complete checkpoint yet.",
                            "Wait for the first save (training.save_steps) or for the run to finish.")
        return checkpoints[-1], path
    run_dir = path.parent.parent if path.parent.name == "checkpoints" and is_run_dir(path.parent.parent) else None
    return path, run_dir


def inspect_checkpoint(src: str | Path) -> CheckpointInfo:
    """Describe a run dir / checkpoint / adapter folder, or raise a UserError saying what is missing."""
    from tunesmith.core.config import RunConfig

    path, run_dir = resolve_checkpoint(src)
    config = None
    for candidate in (path / "config.yaml", run_dir / "config.yaml" if run_dir else None):
        if candidate is not None and candidate.is_file():
            config = RunConfig.load(candidate)
            break
    tag = deepspeed_tag(path)
    if (path / "adapter_config.json").is_file():
        adapter_config = read_adapter_config(path)
        has = any((path / n).is_file() for n in ADAPTER_WEIGHTS)
        if not has and tag is None:
            raise UserError(f"{path} has adapter_config.json but no adapter_model.safetensors.",
                            "The checkpoint is incomplete; use an earlier checkpoint of the run.")
        return CheckpointInfo(path, "adapter", run_dir, config, adapter_config, tag, has)
    if (path / "config.json").is_file() and (any((path / n).is_file() for n in MODEL_WEIGHTS) or tag is not None):
        # a full fine-tune, or an already merged/exported model folder (its config.yaml may say LoRA)
        has = any((path / n).is_file() for n in MODEL_WEIGHTS)
        return CheckpointInfo(path, "full", run_dir, config, {}, tag, has)
    if config is not None and config.uses_lora:
        raise UserError(f"{path} has no adapter_config.json, but the run trained a "
                        f"{config.method.finetuning.upper()} adapter.",
                        "The checkpoint is incomplete or not from this run; use another checkpoint-N folder.")
    if (path / "config.json").is_file():
        raise UserError(f"{path} has config.json but no model weights.",
                        "The checkpoint is incomplete; use an earlier checkpoint of the run.")
    raise UserError(f"{path} is not a checkpoint: it has no adapter_config.json (LoRA/QLoRA) and no "
                    "config.json (full fine-tune).",
                    "Give a run folder or a checkpoints/checkpoint-N folder written by `python -m tunesmith train`.")


def read_adapter_config(folder: Path) -> dict:
    path = folder / "adapter_config.json"
    if not path.is_file():
        raise UserError(f"{folder} has no adapter_config.json, so it is not a PEFT adapter.",
                        "Give the adapter folder written by training (or by `convert to-hf`), "
                        "or a run/checkpoint folder.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}).", "Restore the file from the training run.") from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise UserError(f"{path} is not a PEFT adapter config (no peft_type).",
                        "Give the folder written by training or by `convert to-hf`.")
    return data
