"""Peak GPU memory of a training run, estimated from the model's config.json alone, and "Fit to my GPU".

Modules, each importing only those above it: ``parts`` (the per-part arithmetic: model state,
activations), ``estimate`` (:func:`estimate_memory`, :class:`MemoryEstimate`, the constants in
:data:`PARAMS`; the module docstring explains every part), ``fit`` (:func:`fit_to_gpu`: change a config
step by step until its estimate fits; it imports ``estimate``, never the other way round).
"""

from __future__ import annotations

from tunesmith.core.memory.estimate import (GiB, PARAMS, PARTS, MemoryEstimate, MemoryParams, deepspeed_settings,
                                            detect_gpu_gb, estimate_from_spec, estimate_memory, logits_bytes, replace_params)
from tunesmith.core.memory.fit import CannotFit, fit_to_gpu

__all__ = ["GiB", "PARAMS", "PARTS", "CannotFit", "MemoryEstimate", "MemoryParams", "deepspeed_settings",
           "detect_gpu_gb", "estimate_from_spec", "estimate_memory", "fit_to_gpu", "logits_bytes", "replace_params"]
