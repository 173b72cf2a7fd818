"""Checks before a run starts that touch files, the environment or the data.

``tunesmith.core.config`` is the schema (types, choices, ranges: ``RunConfig.schema_problems()``, pure). This module
sits above it and above ``tunesmith.core.data``: it adds what needs the disk (the model folder, the data file's
cheap checks, its rows for the eval split, a DeepSpeed JSON, a resume checkpoint, the run folder) and the
machine (packages, GPUs, CPU cores). ``launch()`` / ``run_here()`` call :func:`check` once; the GUI calls
:func:`problems` / :func:`warnings` for its validation and preview. Every problem names its field and
its fix, and all of them are reported at once. Never imports torch: the GPU count comes from torch only when it is imported already, else from the
driver's /proc entries and CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

from tunesmith.core.config import DEEPSPEED_PRESETS, REPORT_TO, RunConfig, numbers
from tunesmith.core.errors import ConfigError, DataError, UserError, close_matches, missing_model_error
from tunesmith.core.refs import FILE, FOLDER, HUB, MISSING, classify
from tunesmith.core.train.rundir import CHECKPOINT_NAME_RE

MIN_EVAL_ROWS = 10  # below this the eval loss moves more with the sample than with the model
_ROW_COUNT_BYTES = 8 << 20  # row counts for the eval-split checks only on files read in well under a second


class ConfigProblems(ConfigError):
    """Several problems at once: ``problems`` holds each (a ConfigError naming its field and fix)."""

    def __init__(self, problems: list[ConfigError]):
        self.problems = list(problems)
        first = self.problems[0]
        rest = "; ".join(str(p) for p in self.problems[1:])
        super().__init__(f"{first} (and {len(self.problems) - 1} more: {rest})", field=None)


def problems(cfg: RunConfig, *, check_paths: bool = True, check_env: bool = True) -> list[ConfigError]:
    """Every reason this config cannot run (schema, names, paths, environment), each naming the field and the fix."""
    found = cfg.schema_problems()
    if any(isinstance(v, float) and not math.isfinite(v) for _, v in numbers(cfg)):
        return found  # the schema refused them; every check below is meaningless on inf/nan
    found += list(_name_problems(cfg))
    if check_paths:
        found += list(_path_problems(cfg))
    if check_env:
        found += list(_env_problems(cfg))
    return found


def warnings(cfg: RunConfig, *, check_paths: bool = True, check_env: bool = True) -> list[str]:
    """Values that can run but probably not as the user hopes, each as 'field: why Fix: what'."""
    return [str(w) for w in _warnings(cfg, check_paths=check_paths, check_env=check_env)]


def check(cfg: RunConfig, *, check_paths: bool = True, check_env: bool = True) -> RunConfig:
    """``cfg`` when it can run; else raise its problem (one) or :class:`ConfigProblems` (several)."""
    found = problems(cfg, check_paths=check_paths, check_env=check_env)
    if len(found) == 1:
        raise found[0]
    if found:
        raise ConfigProblems(found)
    return cfg


def _path_problems(cfg: RunConfig):
    E = ConfigError
    m, d, t, di = cfg.model, cfg.data, cfg.training, cfg.distributed
    mp = m.name_or_path
    if mp and classify(mp) in (FILE, MISSING):
        yield missing_model_error(mp, field="model.name_or_path", cls=E)
    elif mp and classify(mp) == FOLDER and not (Path(mp).expanduser() / "config.json").exists():
        yield E(f"{mp} has no config.json, so it is not a Hugging Face model folder.",
                "Point at the folder that holds config.json, or import a GGUF file with `python -m tunesmith import-gguf`.",
                field="model.name_or_path")
    dp = d.path
    if dp and classify(dp) not in (FILE, FOLDER, HUB):
        yield E(f"dataset {dp} does not exist.", "Check the path, or give a hub dataset id like tatsu-lab/alpaca.",
                field="data.path")
    elif dp and classify(dp) == FILE:
        yield from _data_file_problems(dp)
    yield from _source_problems(d)
    ds = di.deepspeed
    if ds and ds not in DEEPSPEED_PRESETS and not Path(ds).expanduser().is_file():
        yield E(f"'{ds}' is neither a DeepSpeed preset nor an existing JSON file.",
                close_matches(ds, DEEPSPEED_PRESETS), field="distributed.deepspeed")
    elif ds and ds.removeprefix("deepspeed_") not in DEEPSPEED_PRESETS:
        # DeepSpeed itself would only refuse it minutes later, after the model has loaded.
        from tunesmith.core.train.deepspeed import deepspeed_problems

        yield from deepspeed_problems(ds)
    # 'latest', N and checkpoint-N name a checkpoint of the run folder; prepare_run resolves them there.
    resume = t.resume_from
    if resume and resume not in ("latest", "auto", "true", "True") and not CHECKPOINT_NAME_RE.match(resume) \
            and not Path(resume).expanduser().exists():
        yield E(f"checkpoint {resume} does not exist.", "Use 'latest', a step number such as 40, "
                "checkpoint-40, or the path of a checkpoint folder.", field="training.resume_from")
    if cfg.output.run_dir:
        problem = run_dir_problem(cfg.output.run_dir)
        if problem:
            yield problem
    if dp and d.eval_size:
        rows = _count_rows(dp)
        if rows is not None and d.max_samples:
            rows = min(rows, d.max_samples)
        n_eval = _eval_rows(d.eval_size, rows)
        if rows is not None and (n_eval < 1 or n_eval >= rows):
            yield E(f"eval_size {d.eval_size:g} gives {n_eval} evaluation row(s) out of {rows}, leaving "
                    f"{'no evaluation' if n_eval < 1 else 'nothing to train on'}.",
                    f"Use a fraction like 0.05 or a row count smaller than {rows}, or 0 for no evaluation.",
                    field="data.eval_size")


def _env_problems(cfg: RunConfig):
    E = ConfigError
    m, t, me, di = cfg.model, cfg.training, cfg.method, cfg.distributed
    gpus = _cuda_count()
    if me.finetuning == "qlora" and not _has("bitsandbytes"):
        yield E("QLoRA needs bitsandbytes and a CUDA GPU or a CPU build that supports 4-bit.",
                "pip install bitsandbytes, or choose LoRA.", field="method.finetuning")
    if t.report_to != "none" and t.report_to in REPORT_TO and not _has(t.report_to):
        yield E(f"report_to '{t.report_to}' needs the {t.report_to} package, which is not installed.",
                f"pip install {t.report_to}, or set training.report_to to none.", field="training.report_to")
    if di.deepspeed and not _has("deepspeed"):
        yield E("DeepSpeed is not installed.", "pip install deepspeed, or leave distributed.deepspeed empty.",
                field="distributed.deepspeed")
    if m.attn_implementation == "flash_attention_2" and (gpus == 0 or not _has("flash_attn")):
        yield E("flash_attention_2 needs the flash-attn package and a CUDA GPU.",
                "Use attn_implementation 'auto' (falls back to SDPA).", field="model.attn_implementation")
    if gpus and di.nproc_per_node > gpus and di.nnodes == 1:
        yield E(f"{di.nproc_per_node} processes asked for but only {gpus} GPU(s) found.",
                f"Set nproc_per_node to {gpus} or less.", field="distributed.nproc_per_node")
    if t.precision == "fp16" and gpus == 0:
        yield E("fp16 training needs a GPU.", "Use precision 'auto' or 'fp32' on CPU.", field="training.precision")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_count() -> int:
    """CUDA GPUs this process would see, without importing torch (seconds) when it is not imported yet."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return torch.cuda.device_count() if torch.cuda.is_available() else 0
        except Exception:  # a broken CUDA install: treat as no GPU
            return 0
    try:
        present = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:  # no NVIDIA driver (or not Linux)
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return present
    return min(present, len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"]))


def _name_problems(cfg: RunConfig):
    """Unknown template / map_fn names, found before anything is launched (the trainer would stop on them)."""
    from tunesmith.core.data.map_fns import get_map_fn
    from tunesmith.core.data.templates import get_template

    d, stage = cfg.data, cfg.method.stage
    checks = []
    if stage != "pretrain" and d.template not in ("", "auto", "chat_template"):
        checks.append(lambda: get_template(d.template))
    if stage in ("sft", "pretrain") and d.map_fn not in ("", "auto", "columns"):
        checks.append(lambda: get_map_fn(d.map_fn))
    for check in checks:
        try:
            check()
        except UserError as exc:
            yield ConfigError(exc.message, exc.fix, field=exc.field)


def _source_problems(d):
    """data.sources: each entry well formed, its file there and readable, its map_fn known."""
    from tunesmith.core.data.map_fns import get_map_fn
    from tunesmith.core.data.sources import data_sources

    try:
        sources = data_sources(d)
    except ConfigError as exc:
        yield exc
        return
    for i, source in enumerate(sources[1 if d.path else 0:]):
        where = f"data.sources[{i}]"
        kind = classify(source.path)
        if kind not in (FILE, FOLDER, HUB):
            yield ConfigError(f"dataset {source.path} ({where}) does not exist.", "Check the path, or give a hub "
                              "dataset id like tatsu-lab/alpaca.", field=f"{where}.path")
        elif kind == FILE:
            for problem in _data_file_problems(source.path):
                yield ConfigError(problem.message, problem.fix, field=f"{where}.path")
        if source.map_fn not in ("", "auto", "columns"):
            try:
                get_map_fn(source.map_fn)
            except UserError as exc:
                yield ConfigError(exc.message, exc.fix, field=f"{where}.map_fn")


def _data_file_problems(path: str):
    """The data loader's cheap checks (empty, not UTF-8, broken JSON with line and column), so a file
    that cannot work is refused before a run starts. Big files are left to the trainer's own check."""
    from tunesmith.core.data.loading import JSON_PRECHECK_BYTES, precheck

    if Path(path).expanduser().stat().st_size > JSON_PRECHECK_BYTES:
        return
    try:
        precheck(path)
    except DataError as exc:
        yield ConfigError(exc.message, exc.fix, field=exc.field or "data.path")


def run_dir_problem(path: str | os.PathLike) -> ConfigError | None:
    """Why ``path`` cannot be (or become) a run folder: it, or a folder above it, is a file, or it is read-only."""
    p = Path(path).expanduser()
    where = "output.run_dir"
    if p.exists() and not p.is_dir():
        return ConfigError(f"{p} is a file, not a folder, so it cannot hold a run.",
                           "Give a folder that does not exist yet (it is created) or an earlier run's folder.",
                           field=where)
    above = p
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return ConfigError(f"{above} is a file, so the run folder {p} cannot be made under it.",
                           "Give a run folder whose parent folders are folders.", field=where)
    if not os.access(above, os.W_OK | os.X_OK):
        return ConfigError(f"{above} is not writable, so the run folder {p} cannot be written.",
                           "Choose a run folder in a place you can write to.", field=where)
    return None


def _count_rows(path: str) -> int | None:
    """Rows of a small local JSON / JSON Lines file, or None when unknown (other kinds, big files, hub ids)."""
    p = Path(path).expanduser()
    try:
        if not p.is_file() or p.stat().st_size > _ROW_COUNT_BYTES:
            return None
        text = p.read_text(encoding="utf-8-sig")
        if p.suffix.lower() == ".jsonl":
            return sum(1 for line in text.splitlines() if line.strip())
        if p.suffix.lower() == ".json":
            data = json.loads(text)
            return len(data) if isinstance(data, list) else None
    except (OSError, ValueError, RecursionError):  # unreadable rows are the data checks' business
        return None
    return None


def _eval_rows(eval_size: float, rows: int | None) -> int | None:
    """The evaluation rows the pipeline holds out (tunesmith.core.data.pipeline._split_eval's arithmetic)."""
    if eval_size >= 1:
        return int(eval_size)
    return None if rows is None else int(round(rows * eval_size))


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _warnings(cfg: RunConfig, *, check_paths: bool, check_env: bool):
    E = ConfigError
    d, di = cfg.data, cfg.distributed
    if any(isinstance(v, float) and not math.isfinite(v) for _, v in numbers(cfg)):
        return  # problems() refuses the config already
    if d.eval_size > 0:
        rows = _count_rows(d.path) if check_paths and d.path else None
        if rows is not None and d.max_samples:
            rows = min(rows, d.max_samples)
        n_eval = _eval_rows(d.eval_size, rows)
        if n_eval is not None and 1 <= n_eval < MIN_EVAL_ROWS and (rows is None or n_eval < rows):
            yield E(f"the evaluation split holds {n_eval} row(s): its loss will say more about those rows than "
                    "about the model.", f"Hold out at least {MIN_EVAL_ROWS} rows, or set 0 for no evaluation.",
                    field="data.eval_size")
        elif n_eval is not None and rows and 2 * n_eval > rows and n_eval < rows:
            yield E(f"the evaluation split takes {n_eval} of the {rows} rows, so most of the data never trains.",
                    "Hold out a small share such as 0.05.", field="data.eval_size")
    if check_env and di.nproc_per_node > 1 and _cuda_count() == 0:
        cores = _cpu_cores()
        if di.nproc_per_node > cores:
            yield E(f"{di.nproc_per_node} processes on a machine with {cores} CPU core(s) and no GPU: they fight "
                    "over the cores, so training is slower than with fewer processes.",
                    f"Set distributed.nproc_per_node to {cores} or less.", field="distributed.nproc_per_node")
