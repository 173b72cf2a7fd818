"""Export: checkpoints -> clean Hugging Face folders, and LoRA adapters merged into their base.

Example::

    from tunesmith.core.export import convert_to_hf, merge_adapter
    convert_to_hf("work_dirs/my_run", "exports/my_adapter", dtype="fp16")
    merge_adapter("embedded:SmolLM2-135M-Instruct", "exports/my_adapter", "exports/merged")
"""

from tunesmith.core.export.convert import convert_to_hf
from tunesmith.core.export.merge import merge_adapter
from tunesmith.core.export.source import CheckpointInfo, inspect_checkpoint, list_checkpoints

__all__ = ["convert_to_hf", "merge_adapter", "inspect_checkpoint", "list_checkpoints", "CheckpointInfo"]
