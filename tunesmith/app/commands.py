"""The `python -m tunesmith ...` command equivalent to each GUI action, shown under every action.

Commands are built as argument lists and only joined (shell-quoted) for display, so a path with
spaces or quotes is shown exactly as a shell needs it.

>>> from tunesmith.core.config import RunConfig
>>> cfg = RunConfig(); cfg.training.batch_size = 4
>>> config_overrides(cfg)
['training.batch_size=4']
>>> train_command("/tmp/run.yaml", work_dir="/runs/a")
'python -m tunesmith train /tmp/run.yaml --work-dir /runs/a'
"""

from __future__ import annotations

import functools
import shlex

from tunesmith.core.config import SECTIONS, RunConfig

PY = ["python", "-m", "tunesmith"]


def show(args: list[str]) -> str:
    """Shell-quote an argument list for display.

    >>> show(["python", "-m", "tunesmith", "check-dataset", "my data.json"])
    "python -m tunesmith check-dataset 'my data.json'"
    """
    return shlex.join(str(a) for a in args)


def _yaml_scalar(value) -> str:
    """One value as YAML flow text, the form ``--set`` parses back (``with_overrides``).

    >>> _yaml_scalar(0.0004), _yaml_scalar(["q_proj", "v_proj"]), _yaml_scalar(True)
    ('0.0004', '[q_proj, v_proj]', 'true')
    """
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9).strip()
    return text[:-3].strip() if text.endswith("...") else text


def config_overrides(cfg: RunConfig, base: RunConfig | None = None, skip: tuple[str, ...] = ()) -> list[str]:
    """``section.field=value`` for every field that differs from ``base`` (default: RunConfig()),
    leaving out the sections in ``skip``."""
    base_d = (base or RunConfig()).to_dict()
    out = []
    for section, values in cfg.to_dict().items():
        if section in skip:
            continue
        for name, value in values.items():
            if base_d[section][name] != value and section in SECTIONS:
                out.append(f"{section}.{name}={_yaml_scalar(value)}")
    return out


def train_command(config_path: str, *, work_dir: str = "", resume: bool = False) -> str:
    """``python -m tunesmith train CONFIG [--work-dir DIR] [--resume]``."""
    args = [*PY, "train", str(config_path)]
    if work_dir:
        args += ["--work-dir", str(work_dir)]
    if resume:
        args += ["--resume"]
    return show(args)


def stop_command(run_dir: str, *, force: bool = False) -> str:
    return show([*PY, "stop", str(run_dir), *(["--force"] if force else [])])


def check_dataset_command(cfg: RunConfig) -> str:
    """``python -m tunesmith check-dataset --data ...`` with the form's data settings.

    >>> from tunesmith.core.config import RunConfig
    >>> c = RunConfig(); c.data.path = "d.csv"; c.data.map_fn = "columns"
    >>> c.data.columns = {"input": "q", "output": "a"}
    >>> check_dataset_command(c).split(" --tokenizer")[0]
    'python -m tunesmith check-dataset --data d.csv --map-fn columns --columns input=q,output=a --template auto'
    """
    args = [*PY, "check-dataset", "--data", cfg.data.path, "--map-fn", cfg.data.map_fn]
    if cfg.data.map_fn == "columns" and cfg.data.columns:
        args += ["--columns", ",".join(f"{role}={col}" for role, col in cfg.data.columns.items())]
    args += ["--template", cfg.data.template, "--tokenizer", cfg.model.name_or_path,
             "--max-length", str(cfg.data.max_length)]
    if cfg.data.system:
        args += ["--system", cfg.data.system]
    if cfg.method.stage != "sft":
        args += ["--stage", cfg.method.stage]
    if cfg.data.split != "train":
        args += ["--split", cfg.data.split]
    return show(args)


def model_info_command(name_or_path: str) -> str:
    return show([*PY, "model-info", name_or_path])


def import_gguf_command(gguf_path: str, out_dir: str) -> str:
    return show([*PY, "import-gguf", gguf_path, out_dir])


def _preset(name: str) -> RunConfig:
    """The preset as loaded, parsed once per file version: parsing it on every estimate update was
    two thirds of the callback's time (YAML plus the dataclass type hints). Read only by the caller."""
    from tunesmith.core import paths

    file = paths.presets_dir() / f"{name}.yaml"
    return _load_preset(name, file.stat().st_mtime_ns if file.is_file() else 0)


@functools.lru_cache(maxsize=16)
def _load_preset(name: str, _version: int) -> RunConfig:
    from tunesmith.core.presets import load_config

    return load_config(name)


def estimate_command(cfg: RunConfig, gpu_gb: float | None, base_config: str | None = None) -> str:
    """``python -m tunesmith estimate BASE --set ...``: the form as differences from a preset.

    The base is the bundled default preset, so the command needs no file of its own.
    """
    from tunesmith.core.presets import DEFAULT_PRESET

    base_config = base_config or DEFAULT_PRESET
    args = [*PY, "estimate", base_config]
    for item in config_overrides(cfg, _preset(base_config), skip=("eval", "output")):
        args += ["--set", item]
    if gpu_gb:
        args += ["--gpu-gb", f"{gpu_gb:g}"]
    return show(args)


def copy_cfg_command(preset: str, out_dir: str = ".") -> str:
    return show([*PY, "copy-cfg", preset, out_dir])


def convert_command(src: str, out_dir: str, dtype: str, shard: str) -> str:
    return show([*PY, "convert", "to-hf", src, out_dir, "--dtype", dtype, "--max-shard-size", shard])


def merge_command(base: str, adapter: str, out_dir: str, dtype: str, shard: str) -> str:
    return show([*PY, "convert", "merge", base, adapter, out_dir, "--dtype", dtype, "--max-shard-size", shard])


def chat_command(model: str, *, adapter: str = "", template: str = "auto", system: str = "",
                 temperature: float = 0.0, top_p: float = 1.0, top_k: int = 40, repetition_penalty: float = 1.0,
                 max_new_tokens: int = 256) -> str:
    args = [*PY, "chat", model]
    if adapter:
        args += ["--adapter", adapter]
    if template and template != "auto":
        args += ["--prompt-template", template]
    if system:
        args += ["--system", system]
    args += ["--temperature", f"{temperature:g}", "--top-p", f"{top_p:g}", "--top-k", str(int(top_k))]
    if repetition_penalty != 1:
        args += ["--repetition-penalty", f"{repetition_penalty:g}"]
    args += ["--max-new-tokens", str(int(max_new_tokens))]
    return show(args)
