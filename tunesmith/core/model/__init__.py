"""What a model is, from its config.json alone (no weights read or downloaded).

Modules, each importing only those above it: ``architecture`` (:class:`ArchSpec` from a config.json dict),
``inventory`` (parameter counts per layer: meta-device model or config fields), ``facts`` (finding
config.json locally / in the hub cache / in the bundled snapshot, and :func:`model_facts` for the GUI and CLI).
"""

from __future__ import annotations

from tunesmith.core.model.architecture import ArchSpec, arch_spec, human_count, is_native
from tunesmith.core.model.facts import NotCached, family_of, find_config_json, format_facts, model_facts, read_config
from tunesmith.core.model.inventory import LinearLayer, ParamInventory, from_fields, param_inventory

__all__ = ["ArchSpec", "LinearLayer", "NotCached", "ParamInventory", "arch_spec", "family_of", "find_config_json",
           "format_facts", "from_fields", "human_count", "is_native", "model_facts", "param_inventory",
           "read_config"]
