"""The form <-> RunConfig mapping: the whole form state is one RunConfig.

Every RunConfig field has exactly one widget whose registry id is the field's dotted path
(``"training.learning_rate"``), except three fields that read better split or joined:

* ``data.columns`` (a dict) - four text boxes ``data/col_input``, ``data/col_output``,
  ``data/col_system``, ``data/col_history``;
* ``distributed.deepspeed`` - a stage drop-down (``""``, zero1/2/3 or a JSON path) plus the
  ``method/ds_offload`` check box;
* ``eval.prompts`` - one prompt per line; ``lora.target_modules`` - comma separated.

>>> values = values_from_config(gui_default_config())
>>> config_from_values(values) == gui_default_config()
True
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tunesmith.core.config import EMBEDDED_MODEL, SECTIONS, RunConfig
from tunesmith.core.errors import ConfigError
from tunesmith.core.paths import assets_dir

COLUMN_ROLES = ("input", "output", "system", "history")
COLUMN_IDS = {role: f"data/col_{role}" for role in COLUMN_ROLES}
DS_OFFLOAD_ID = "method/ds_offload"
DS_STAGES = ("", "zero1", "zero2", "zero3")
DEMO_DATA = "identity.json"

# What changes when the user picks a method; only applied on that user action, never on load.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "qlora": {"training.learning_rate": 2e-4, "model.gradient_checkpointing": True},
    "lora": {"training.learning_rate": 2e-4},
    "full": {"training.learning_rate": 2e-5},
    "sft": {"data.pack": True},
    "pretrain": {"data.pack": True, "data.template": "auto"},
    "dpo": {"training.learning_rate": 5e-6, "data.pack": False, "method.pref_beta": 0.1},
    "orpo": {"training.learning_rate": 8e-6, "data.pack": False, "method.pref_beta": 0.1},
}


def config_fields() -> list[str]:
    """Every ``section.field`` path of RunConfig, in declaration order."""
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def form_ids() -> list[str]:
    """Registry ids of every widget that edits the RunConfig (``data.columns`` is four boxes)."""
    return [f for f in config_fields() if f != "data.columns"] + list(COLUMN_IDS.values()) + [DS_OFFLOAD_ID]


def gui_default_config() -> RunConfig:
    """The form's start state: the embedded model on the identity demo, sized for a laptop CPU.

    It is the bundled preset ``smollm2_135m_instruct_lora_identity_e3`` (LoRA on every linear layer,
    packed short sequences, 3 epochs of a small file: a few minutes on 2 CPU cores), so one click
    on Start trains something real and the Chat tab can talk to it. Without the preset, an
    equivalent config is built here.
    """
    try:
        from tunesmith.core.presets import DEFAULT_PRESET, load_config

        cfg = load_config(DEFAULT_PRESET)
        cfg.output.name = ""  # let each run be named after its model and data
        return cfg
    except Exception:  # noqa: BLE001 - presets missing or broken: fall back to the same idea by hand
        pass
    cfg = RunConfig()
    cfg.model.name_or_path = EMBEDDED_MODEL
    cfg.data.path = str(assets_dir() / DEMO_DATA)
    cfg.data.max_length = 512
    cfg.method.finetuning = "lora"
    cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout = 16, 32, 0.05
    cfg.training.num_epochs = 3.0
    cfg.data.map_fn, cfg.data.template = "openai", "chat_template"
    cfg.training.learning_rate = 5e-4
    cfg.training.batch_size, cfg.training.gradient_accumulation = 4, 1
    cfg.training.save_steps = 0
    cfg.eval.prompts = ["Who are you?", "What is your name?"]
    return cfg


def _split_deepspeed(value: str) -> tuple[str, bool]:
    """``"zero3_offload"`` -> ``("zero3", True)``; a JSON path stays as is.

    >>> _split_deepspeed("zero2_offload"), _split_deepspeed(""), _split_deepspeed("/x/ds.json")
    (('zero2', True), ('', False), ('/x/ds.json', False))
    """
    if value.endswith("_offload") and value[: -len("_offload")] in DS_STAGES:
        return value[: -len("_offload")], True
    return value, False


def _join_deepspeed(stage: str, offload: bool) -> str:
    """The inverse of :func:`_split_deepspeed`; offload only exists for ZeRO-2 and ZeRO-3.

    >>> _join_deepspeed("zero3", True), _join_deepspeed("zero1", True), _join_deepspeed("", True)
    ('zero3_offload', 'zero1', '')
    """
    stage = (stage or "").strip()
    return f"{stage}_offload" if offload and stage in ("zero2", "zero3") else stage


def _list_to_text(field: str, value: list) -> str:
    sep = "\n" if field == "eval.prompts" else ", "
    return sep.join(str(v) for v in value)


def _text_to_list(field: str, value: Any) -> list:
    if isinstance(value, list):
        return value
    text = str(value or "")
    parts = text.splitlines() if field == "eval.prompts" else text.replace("\n", ",").split(",")
    return [p.strip() for p in parts if p.strip()]


def sources_to_text(sources: list) -> str:
    """data.sources -> the Data tab's "more files" box: one ``path``, ``path | map_fn`` or
    ``path | columns | input=q,output=a`` per line (max_rows is kept from the config while the line is unchanged).

    >>> sources_to_text([{"path": "b.jsonl"}, {"path": "c.json", "map_fn": "alpaca"}])
    'b.jsonl\\nc.json | alpaca'
    """
    lines = []
    for s in sources or []:
        s = {"path": s} if isinstance(s, str) else dict(s)
        map_fn = s.get("map_fn") or ("columns" if s.get("columns") else "auto")
        line = s.get("path", "") + ("" if map_fn == "auto" else f" | {map_fn}")
        if s.get("columns"):
            line += " | " + ",".join(f"{role}={col}" for role, col in s["columns"].items())
        lines.append(line)
    return "\n".join(lines)


def text_to_sources(value: Any) -> list:
    """The "more files" box -> data.sources (a list is kept as it is).

    >>> text_to_sources("b.jsonl\\n c.json | alpaca \\n")
    [{'path': 'b.jsonl'}, {'path': 'c.json', 'map_fn': 'alpaca'}]
    """
    if isinstance(value, list):
        return value
    from tunesmith.core.data.map_fns import parse_columns_arg

    out = []
    for line in str(value or "").splitlines():
        path, map_fn, columns = ([p.strip() for p in line.split("|", 2)] + ["", ""])[:3]
        if path:
            out.append({"path": path, **({"map_fn": map_fn} if map_fn and map_fn != "auto" else {}),
                        **({"columns": parse_columns_arg(columns)} if columns else {})})
    return out


def values_from_config(cfg: RunConfig) -> dict[str, Any]:
    """RunConfig -> ``{widget id: widget value}`` (lists become text, columns/deepspeed split)."""
    out: dict[str, Any] = {}
    data = cfg.to_dict()
    for path in config_fields():
        section, name = path.split(".")
        value = data[section][name]
        if path == "data.columns":
            for role, wid in COLUMN_IDS.items():
                out[wid] = str(value.get(role, "") or "")
            continue
        if path == "distributed.deepspeed":
            out[path], out[DS_OFFLOAD_ID] = _split_deepspeed(value)
            continue
        if path == "data.sources":
            out[path] = sources_to_text(value)
            continue
        out[path] = _list_to_text(path, value) if isinstance(value, list) else value
    return out


def config_from_values(values: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """``{widget id: value}`` -> RunConfig; fields missing from ``values`` keep ``base``'s value.

    Raises :class:`ConfigError` naming the field for a wrong type (e.g. text in a number box).
    """
    data = (base or RunConfig()).to_dict()
    for path in config_fields():
        section, name = path.split(".")
        if path == "data.columns":
            if any(wid in values for wid in COLUMN_IDS.values()):
                data[section][name] = {role: str(values.get(wid) or "").strip()
                                       for role, wid in COLUMN_IDS.items() if str(values.get(wid) or "").strip()}
            continue
        if path == "distributed.deepspeed":
            if path in values or DS_OFFLOAD_ID in values:
                stage, offload = _split_deepspeed(data[section][name])
                data[section][name] = _join_deepspeed(values.get(path, stage) or "",
                                                      bool(values.get(DS_OFFLOAD_ID, offload)))
            continue
        if path not in values:
            continue
        value = values[path]
        if value is None:  # an emptied number box
            raise ConfigError("is empty.", "Type a value (see the hint under the box).", field=path)
        if path == "data.sources":  # unedited: keep what the box cannot show (columns, max_rows)
            unchanged = isinstance(value, str) and value.strip() == sources_to_text(data[section][name])
            value = data[section][name] if unchanged else text_to_sources(value)
        elif isinstance(data[section][name], list):
            value = _text_to_list(path, value)
        elif isinstance(value, str) and not isinstance(data[section][name], str):
            value = value.strip()
        data[section][name] = value
    return RunConfig.from_dict(data)


def method_defaults(choice: str) -> dict[str, Any]:
    """Widget values to set when the user picks a method (finetuning type or stage).

    >>> method_defaults("full")["training.learning_rate"]
    2e-05
    """
    return dict(METHOD_DEFAULTS.get(choice, {}))
