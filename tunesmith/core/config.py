"""The one typed run configuration that the GUI, the CLI and the tests all build.

A :class:`RunConfig` is a tree of small dataclasses (model, data, method, lora, quantization,
training, eval, distributed, output). It round-trips through YAML, is saved next to every
checkpoint, and checks its own values (types, choices, ranges) with messages that name the field and the
fix; the checks that touch files or the machine are tunesmith.core.preflight's.

>>> cfg = RunConfig()
>>> cfg.training.learning_rate
0.0002
>>> RunConfig.from_yaml(cfg.to_yaml()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunesmith.core.errors import ConfigError, close_matches
from tunesmith.core.files import atomic_write_text
from tunesmith.core.refs import EMBEDDED_MODEL


STAGES = ("sft", "pretrain", "dpo", "orpo")
FINETUNING = ("qlora", "lora", "full")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
ATTN = ("auto", "sdpa", "flash_attention_2", "eager")
LAUNCHERS = ("auto", "python", "torchrun", "slurm")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "paged_adamw_32bit", "adamw_8bit", "sgd", "adafactor")
DEEPSPEED_PRESETS = ("zero1", "zero2", "zero2_offload", "zero3", "zero3_offload")
REPORT_TO = ("none", "tensorboard", "wandb", "mlflow", "trackio")  # tunesmith.core.train.reporting writes them
# Per-device sequences per forward pass and forward passes per step: far beyond any real run, so a
# bigger value is a typo (10**12 would otherwise be accepted and the data loader takes the whole set).
MAX_BATCH_SIZE = 4096
MAX_GRADIENT_ACCUMULATION = 4096
MAX_EPOCHS = 10_000
MAX_SEED = 2**32 - 1  # numpy's seed range; set_seed raises ValueError outside it


def _f(default: Any, help: str, choices: tuple | None = None):
    """A dataclass field with help text (and optional allowed values) in its metadata."""
    meta = {"help": help}
    if choices:
        meta["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    name_or_path: str = _f(EMBEDDED_MODEL, "Base model: a local folder, a Hugging Face hub id, or "
                           f"'{EMBEDDED_MODEL}' for the model bundled with the app.")
    trust_remote_code: bool = _f(False, "Run Python code shipped with the model. Only turn on for models you trust.")
    attn_implementation: str = _f("auto", "Attention kernel. 'auto' uses flash_attention_2 when flash-attn and a GPU "
                                  "are present, else PyTorch SDPA.", ATTN)
    gradient_checkpointing: bool = _f(True, "Recompute activations in the backward pass: much less memory, about 30% slower.")
    offload_checkpoints: bool = _f(False, "With gradient checkpointing: keep each layer's saved input in (pinned) CPU memory "
                                   "instead of on the GPU, copied back in the backward pass (less GPU memory, a little slower).")
    offload_embeddings: bool = _f(False, "LoRA/QLoRA: keep the frozen input embedding table in CPU memory and look tokens "
                                  "up there (saves vocab x hidden x 2 bytes of GPU memory; not for tied embeddings).")


@dataclass
class DataConfig:
    path: str = _f("", "Dataset: a .json/.jsonl/.csv/.parquet/.txt file, a folder saved by `datasets`, or a hub id.")
    map_fn: str = _f("auto", "How rows become conversations: an XTuner format name (alpaca, openai, sharegpt, ...), "
                     "'columns' to map columns by hand, or 'auto' to guess from the columns.")
    columns: dict = _f({}, "For map_fn 'columns': which column holds each role, e.g. "
                       "{input: question, output: answer, system: sys, history: turns}.")
    template: str = _f("auto", "Prompt template: an XTuner template name, 'chat_template' for the tokenizer's own, "
                       "or 'auto' to pick from the model family.")
    system: str = _f("", "System prompt added to conversations that have none.")
    max_length: int = _f(2048, "Maximum tokens per training sequence; longer samples keep their head.")
    pack: bool = _f(True, "Pack several samples into each max_length sequence (much faster on short samples).")
    shuffle_before_pack: bool = _f(True, "Shuffle samples before packing, as XTuner does.")
    max_samples: int = _f(0, "Use at most this many rows (0 = all).")
    eval_size: float = _f(0.0, "Held-out evaluation split: a fraction (<1) or a number of rows (>=1); 0 = none.")
    num_proc: int = _f(1, "Processes used to tokenize the dataset.")
    split: str = _f("train", "Split to read from a hub dataset or a saved DatasetDict.")
    sources: list = _f([], "More datasets in the same run, each with its own format: a list of {path, map_fn, "
                       "columns, max_rows}; they are concatenated after data.path (as XTuner concatenates datasets).")


@dataclass
class MethodConfig:
    stage: str = _f("sft", "Training objective: sft (instruction tuning), pretrain (plain text, no template), "
                    "dpo or orpo (preference pairs).", STAGES)
    finetuning: str = _f("qlora", "Which weights train: qlora (4-bit base + LoRA, least memory), lora, or full.", FINETUNING)
    pref_beta: float = _f(0.1, "DPO/ORPO beta: how strongly to prefer chosen over rejected answers.")
    dpo_loss: str = _f("sigmoid", "DPO loss type (TRL loss_type).", ("sigmoid", "hinge", "ipo", "robust"))
    max_prompt_length: int = _f(512, "DPO/ORPO: longest prompt kept, in tokens.")


@dataclass
class LoraSettings:
    r: int = _f(64, "LoRA rank: adapter size. 8-64 is usual.")
    alpha: int = _f(16, "LoRA alpha: scales the adapter's update (effective scale alpha / r).")
    dropout: float = _f(0.1, "Dropout on the LoRA input.")
    target_modules: list = _f(["all-linear"], "Layers that get adapters; 'all-linear' means every linear layer but the output head.")
    use_dora: bool = _f(False, "Weight-decomposed LoRA (DoRA): sometimes better, slower.")
    use_rslora: bool = _f(False, "Rank-stabilised scaling alpha / sqrt(r).")


@dataclass
class QuantizationConfig:
    bits: int = _f(4, "Bits of the frozen base weights for QLoRA.", (4, 8))
    quant_type: str = _f("nf4", "4-bit data type.", ("nf4", "fp4"))
    double_quant: bool = _f(True, "Quantize the quantization constants too (saves about 0.4 bit per parameter).")
    compute_dtype: str = _f("auto", "Dtype of the matmuls on de-quantized weights ('auto' follows training.precision).", PRECISIONS)


@dataclass
class TrainingConfig:
    num_epochs: float = _f(3.0, "Passes over the training data.")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1 = run all epochs).")
    batch_size: int = _f(1, "Sequences per device per forward pass.")
    gradient_accumulation: int = _f(16, "Forward passes per optimizer step; effective batch = batch_size x this x GPUs.")
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    lr_scheduler: str = _f("cosine", "Learning-rate schedule after warmup.", SCHEDULERS)
    warmup_ratio: float = _f(0.03, "Share of the steps spent warming the learning rate up from 0.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Clip the gradient norm to this value (0 = no clipping).")
    optimizer: str = _f("adamw_torch", "Optimizer (HF Trainer optim name).", OPTIMIZERS)
    loss: str = _f("auto", "Cross-entropy implementation: chunked (logits of a few hundred tokens at a time, "
                   "never the whole batch x sequence x vocabulary), liger (fused kernel, CUDA + liger-kernel), "
                   "standard (full logits); auto = liger or chunked for LoRA/QLoRA, "
                   "standard for full fine-tunes.", ("auto", "chunked", "liger", "standard"))
    precision: str = _f("auto", "Training precision: 'auto' = bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU.", PRECISIONS)
    seed: int = _f(42, "Random seed for data order, dropout and initialisation.")
    logging_steps: int = _f(1, "Write a metrics line every this many optimizer steps.")
    save_steps: int = _f(500, "Save a checkpoint every this many optimizer steps (0 = only at the end).")
    save_total_limit: int = _f(2, "Keep at most this many checkpoints (0 = keep all).")
    eval_steps: int = _f(0, "Compute eval loss every this many steps (0 = at each save).")
    resume_from: str = _f("", "Resume from 'latest' or a checkpoint folder; empty = start fresh.")
    report_to: str = _f("tensorboard", "Also send the metrics to: tensorboard (event files in RUN_DIR/tensorboard), "
                        "wandb, mlflow or trackio (offline, files in the run folder; package needed), or none.",
                        REPORT_TO)


@dataclass
class EvalConfig:
    prompts: list = _f(["Who are you?", "Please tell me five scenic spots in Shanghai"],
                       "Prompts the model answers during training so you can watch it learn.")
    every_n_steps: int = _f(0, "Answer the prompts every this many steps (0 = at each save and at the end).")
    max_new_tokens: int = _f(128, "Longest answer generated for each prompt.")


@dataclass
class DistributedConfig:
    launcher: str = _f("auto", "How to start the trainer: auto (python for 1 process, torchrun otherwise), "
                       "python, torchrun, or slurm (srun).", LAUNCHERS)
    nproc_per_node: int = _f(1, "Processes (GPUs) per machine.")
    nnodes: int = _f(1, "Machines taking part.")
    node_rank: int = _f(0, "This machine's index among nnodes.")
    master_addr: str = _f("127.0.0.1", "Address of the machine with node_rank 0.")
    master_port: int = _f(0, "Rendezvous port (0 = pick a free one).")
    deepspeed: str = _f("", "DeepSpeed: a preset (zero1, zero2, zero2_offload, zero3, zero3_offload) or a JSON path; "
                        "empty = plain DDP.")


@dataclass
class OutputConfig:
    run_dir: str = _f("", "Folder for this run's config, logs, metrics and checkpoints (empty = work_dirs/<name>).")
    name: str = _f("", "Short name of the run (empty = derived from model and dataset).")


SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "method": MethodConfig,
    "lora": LoraSettings,
    "quantization": QuantizationConfig,
    "training": TrainingConfig,
    "eval": EvalConfig,
    "distributed": DistributedConfig,
    "output": OutputConfig,
}


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the YAML atomically (temp file + rename) so a reader never sees half a file."""
        return atomic_write_text(path, self.to_yaml())

    @classmethod
    def from_dict(cls, data: dict | None) -> "RunConfig":
        """Build from a plain dict, refusing unknown keys and wrong types with a clear message."""
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"the config must be a mapping of sections, got {type(data).__name__}.",
                              "Start from `python -m tunesmith copy-cfg NAME DIR` or the GUI's Save config.")
        sections = {}
        for key, value in data.items():
            if key not in SECTIONS:
                raise ConfigError(f"unknown section '{key}'.", close_matches(str(key), SECTIONS), field=str(key))
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"section '{key}' must be a mapping of fields, got {type(value).__name__}.",
                                  f"Write it as '{key}:' followed by indented 'field: value' lines.", field=key)
            sections[key] = _build_section(key, SECTIONS[key], value)
        return cls(**sections)

    @classmethod
    def from_yaml(cls, text: str) -> "RunConfig":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"the config is not valid YAML{where}: {getattr(exc, 'problem', exc)}.",
                              "Check indentation and quoting on that line.") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunConfig":
        path = Path(path)
        if path.is_dir():
            path = path / "config.yaml"
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist.", "Give the path of a run config YAML "
                              "(see `python -m tunesmith list-cfg`).")
        try:
            return cls.from_yaml(path.read_text(encoding="utf-8"))
        except ConfigError as exc:
            exc.message = f"{path}: {exc.message}"
            raise

    def with_overrides(self, assignments: list[str]) -> "RunConfig":
        """Return a copy with ``section.field=value`` assignments applied (values parsed as YAML).

        >>> RunConfig().with_overrides(["training.batch_size=4"]).training.batch_size
        4
        """
        data = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"override '{item}' is not of the form section.field=value.",
                                  "Example: --set training.learning_rate=1e-4")
            key, raw = item.split("=", 1)
            parts = key.strip().split(".")
            if len(parts) != 2:
                raise ConfigError(f"override key '{key}' must be section.field.",
                                  f"Sections: {', '.join(SECTIONS)}.")
            section, name = parts
            if section not in data:
                raise ConfigError(f"unknown section '{section}'.", close_matches(section, SECTIONS), field=section)
            try:
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
                value = raw
            data[section][name] = value
        return RunConfig.from_dict(data)

    # ---- derived values ------------------------------------------------------------------
    @property
    def uses_lora(self) -> bool:
        return self.method.finetuning in ("lora", "qlora")

    @property
    def world_size(self) -> int:
        return max(1, self.distributed.nproc_per_node) * max(1, self.distributed.nnodes)

    @property
    def effective_batch_size(self) -> int:
        return self.training.batch_size * self.training.gradient_accumulation * self.world_size

    def default_name(self) -> str:
        model = Path(self.model.name_or_path.split(":")[-1].rstrip("/")).name or "model"
        data = Path(self.data.path.rstrip("/")).stem or "data"
        return f"{model}_{self.method.finetuning}_{data}".lower().replace(" ", "_")

    # ---- validation ----------------------------------------------------------------------
    def schema_problems(self) -> list[ConfigError]:
        """Every value outside its field's type, choices or range, each naming the field and the fix.

        Pure: reads no file and asks nothing of the machine. The checks that do (paths, packages, GPUs,
        the data's rows) are tunesmith.core.preflight's: ``tunesmith.core.preflight.problems(cfg)`` returns these and those.
        """
        return list(_problems(self))


def help_for(section: str, name: str) -> str:
    """Help text of one field, e.g. ``help_for('training', 'learning_rate')``."""
    for f in dataclasses.fields(SECTIONS[section]):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(f"{section}.{name}")


# ---- helpers ------------------------------------------------------------------------------

def _type_of(cls, name: str):
    hints = typing.get_type_hints(cls)
    return hints[name]


def _coerce(value: Any, kind, where: str) -> Any:
    """Check (and gently coerce) one value against a field's annotation."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"must be true or false, got {value!r}.", "Write true or false.", field=where)
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"must be a whole number, got {value!r}.", "Write a number such as 4.", field=where)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"must be a whole number, got {value!r}.", "Write a number such as 4.", field=where)
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"must be a number, got {value!r}.", "Write a number such as 0.0002.", field=where)
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            # YAML 1.1 reads "2e-4" as a string; accept it as the number the user meant.
            try:
                number = float(value.strip())
            except ValueError:
                pass
        if number is not None and math.isfinite(number):
            return number
        if number is not None:  # .inf / .nan pass YAML and float() but crash the trainer (OverflowError)
            raise ConfigError(f"must be a finite number, got {value!r}.", "Write a number such as 3.", field=where)
        raise ConfigError(f"must be a number, got {value!r}.", "Write a number such as 0.0002.", field=where)
    if kind is str:
        if value is None:
            return ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str):
            return value
        raise ConfigError(f"must be text, got {type(value).__name__} {value!r}.", "Write a single value.", field=where)
    if kind is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()] if "," in value else ([value] if value else [])
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ConfigError(f"must be a list, got {value!r}.", "Write it as [a, b].", field=where)
    if kind is dict:
        if value is None or value == "":
            return {}
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"must be a mapping, got {value!r}.", "Write it as {key: value}.", field=where)
    return value


def _build_section(section: str, cls, values: dict):
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        where = f"{section}.{key}"
        if key not in names:
            raise ConfigError(f"unknown field '{where}'.", close_matches(str(key), names), field=where)
        kind = _type_of(cls, key)
        origin = typing.get_origin(kind)
        if origin in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        kwargs[key] = _coerce(value, kind, where)
    return cls(**kwargs)


def numbers(cfg: RunConfig):
    """(``section.field``, value) of every field."""
    for section, cls in SECTIONS.items():
        obj = getattr(cfg, section)
        for f in dataclasses.fields(cls):
            yield f"{section}.{f.name}", getattr(obj, f.name)


def _problems(cfg: RunConfig):
    E = ConfigError
    m, d, t, me, lo, di = cfg.model, cfg.data, cfg.training, cfg.method, cfg.lora, cfg.distributed

    # Set in code, past _coerce's check. Every comparison below is meaningless on inf/nan, so stop here.
    non_finite = [E(f"must be a finite number, got {value!r}.", "Write a number such as 3.", field=where)
                  for where, value in numbers(cfg) if isinstance(value, float) and not math.isfinite(value)]
    if non_finite:
        yield from non_finite
        return

    for section, cls in SECTIONS.items():
        obj = getattr(cfg, section)
        for f in dataclasses.fields(cls):
            choices = f.metadata.get("choices")
            value = getattr(obj, f.name)
            if choices and value not in choices:
                yield E(f"must be one of {', '.join(map(str, choices))}; got {value!r}.",
                        close_matches(str(value), [str(c) for c in choices]), field=f"{section}.{f.name}")

    positive = [("training.batch_size", t.batch_size), ("training.gradient_accumulation", t.gradient_accumulation),
                ("data.max_length", d.max_length), ("training.logging_steps", t.logging_steps),
                ("data.num_proc", d.num_proc), ("distributed.nproc_per_node", di.nproc_per_node),
                ("distributed.nnodes", di.nnodes), ("eval.max_new_tokens", cfg.eval.max_new_tokens)]
    for where, value in positive:
        if value < 1:
            yield E(f"must be >= 1, got {value}.", "Use a positive whole number.", field=where)
    for where, value, limit in (("training.batch_size", t.batch_size, MAX_BATCH_SIZE),
                                ("training.gradient_accumulation", t.gradient_accumulation, MAX_GRADIENT_ACCUMULATION)):
        if value > limit:
            yield E(f"{value} is far beyond any real run (at most {limit}).",
                    f"Use a value from 1 to {limit}; the effective batch is batch_size x gradient_accumulation "
                    "x processes.", field=where)
    if t.num_epochs > MAX_EPOCHS:
        yield E(f"{t.num_epochs:g} epochs is far beyond any real run (at most {MAX_EPOCHS}).",
                "Use a number of passes such as 3, or set training.max_steps.", field="training.num_epochs")
    if not 0 <= t.seed <= MAX_SEED:
        yield E(f"must be from 0 to {MAX_SEED}, got {t.seed}.", "Use a whole number such as 42.", field="training.seed")
    if not (t.learning_rate > 0):
        yield E(f"must be > 0, got {t.learning_rate}.", "Typical values: 2e-4 for LoRA/QLoRA, 2e-5 for full.",
                field="training.learning_rate")
    elif t.learning_rate > 1e-2:
        yield E(f"{t.learning_rate} is far too large and will diverge.", "Use 2e-4 for LoRA/QLoRA or 2e-5 for full.",
                field="training.learning_rate")
    if t.num_epochs <= 0 and t.max_steps <= 0:
        yield E("no training would happen: num_epochs <= 0 and max_steps <= 0.", "Set num_epochs (e.g. 3) or max_steps.",
                field="training.num_epochs")
    if not 0 <= t.warmup_ratio < 1:
        yield E(f"must be in [0, 1), got {t.warmup_ratio}.", "Typical: 0.03.", field="training.warmup_ratio")
    for where, value in [("training.weight_decay", t.weight_decay), ("training.max_grad_norm", t.max_grad_norm),
                         ("training.save_steps", t.save_steps), ("training.save_total_limit", t.save_total_limit),
                         ("training.eval_steps", t.eval_steps), ("data.max_samples", d.max_samples),
                         ("data.eval_size", d.eval_size), ("eval.every_n_steps", cfg.eval.every_n_steps),
                         ("distributed.node_rank", di.node_rank), ("distributed.master_port", di.master_port)]:
        if value < 0:
            yield E(f"must be >= 0, got {value}.", "Use 0 or a positive value.", field=where)
    if d.max_length < 16:
        yield E(f"{d.max_length} tokens is too short for any prompt template.", "Use at least 128 (2048 is usual).",
                field="data.max_length")
    if di.node_rank >= di.nnodes:
        yield E(f"node_rank {di.node_rank} must be < nnodes {di.nnodes}.", "Number machines 0..nnodes-1.",
                field="distributed.node_rank")
    if di.master_port > 65535:
        yield E(f"port {di.master_port} is out of range.", "Use 0 (auto) or 1024-65535.", field="distributed.master_port")

    if cfg.uses_lora:
        if lo.r < 1:
            yield E(f"must be >= 1, got {lo.r}.", "Typical LoRA ranks: 8, 16, 64.", field="lora.r")
        if lo.alpha < 1:
            yield E(f"must be >= 1, got {lo.alpha}.", "Typical: 16.", field="lora.alpha")
        if not 0 <= lo.dropout < 1:
            yield E(f"must be in [0, 1), got {lo.dropout}.", "Typical: 0.05-0.1.", field="lora.dropout")
        if not lo.target_modules:
            yield E("no layers selected.", "Use [all-linear] or name layers like [q_proj, v_proj].", field="lora.target_modules")
    if me.stage in ("dpo", "orpo") and me.pref_beta <= 0:
        yield E(f"must be > 0, got {me.pref_beta}.", "Typical: 0.1.", field="method.pref_beta")
    if d.map_fn == "columns" and me.stage == "sft" and not d.columns.get("output") and not d.columns.get("history"):
        yield E("map_fn 'columns' needs at least the output column.", "Set data.columns to {input: ..., output: ...}.",
                field="data.columns")

    if not m.name_or_path:
        yield E("no base model given.", f"Set a local folder, a hub id, or {EMBEDDED_MODEL}.", field="model.name_or_path")
    if not d.path and not d.sources:
        yield E("no dataset given.", "Set a data file (json/jsonl/csv/parquet/txt), a saved dataset folder or a hub id.",
                field="data.path")
    if d.sources and me.stage in ("dpo", "orpo"):
        yield E(f"several sources (data.sources) are for sft and pretrain; {me.stage} reads data.path only.",
                "Put the preference pairs in one file (data.path) and empty data.sources.", field="data.sources")
