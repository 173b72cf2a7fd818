"""Map functions: one dataset row -> XTuner's standard ``{"conversation": [turn, ...]}``.

A turn is ``{"system": str, "input": str, "output": str}`` plus, where a format says so,
``output_with_loss`` (False masks that answer) and ``need_eos_token`` (False: no EOS after it).
Column semantics follow XTuner's ``dataset_map_fns`` one for one; ``sharegpt``, ``standard``
and the column mapping (:func:`make_columns_map_fn`) are ours.

A row that cannot become a conversation raises :class:`RowSkipped` with a reason; the pipeline
drops it and counts the reason. Wrong columns for the whole file are caught before mapping by
:func:`check_columns`.

Modules, each importing only those above it: ``base`` (RowSkipped, MapFn, value cleaning), ``formats``
(one-turn XTuner formats), ``messages`` (message parsing and the multi-turn formats), ``agent`` (MSAgent
ReAct), ``columns`` (column mapping), ``suggest`` (map_fn from the columns), ``registry`` (names, check).
"""

from __future__ import annotations

from tunesmith.core.data.map_fns.base import MapFn, RowSkipped
from tunesmith.core.data.map_fns.columns import COLUMNS, parse_columns_arg, suggest_columns
from tunesmith.core.data.map_fns.registry import ALIASES, MAP_FNS, check_columns, get_map_fn, make_columns_map_fn, suggest_map_fn

__all__ = ["ALIASES", "COLUMNS", "MAP_FNS", "MapFn", "RowSkipped", "check_columns", "get_map_fn",
           "make_columns_map_fn", "parse_columns_arg", "suggest_columns", "suggest_map_fn"]
