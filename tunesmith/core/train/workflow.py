"""What SFT/pretraining and DPO/ORPO share: the session, TrainingArguments, callbacks, the run loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.core.config import RunConfig
from tunesmith.core.train.callbacks import EvalChatCallback, RunMetricsCallback, StopCallback, StopFlag, phase_fields
from tunesmith.core.train.dist import DistContext
from tunesmith.core.train.reporting import metric_sinks, trainer_report_to
from tunesmith.core.train.rundir import RunDir
from tunesmith.core.train.trainer import Faults


class StoppedEarly(Exception):
    """A stop request arrived before training started (nothing to save)."""


@dataclass
class Session:
    """Everything a workflow needs besides the config."""

    rd: RunDir
    ctx: DistContext
    stop: StopFlag = field(default_factory=StopFlag)
    faults: Faults = field(default_factory=Faults)

    def check_stop(self, phase: str) -> None:
        if self.stop.is_set() or self.rd.stop_requested():
            raise StoppedEarly(f"Stopped while {phase}; training had not started, so nothing was saved.")

    def phase(self, message: str, key: str = "", done: int | None = None, total: int | None = None) -> None:
        """Say what the run is doing before its first step (a key the GUI renders in its own language,
        with its own progress), so a long start-up does not look like a frozen "step 0"."""
        if self.ctx.is_main:
            self.rd.write_status(message=message, **phase_fields(key, done, total))
            print(f"[tunesmith] {message}", flush=True)


@dataclass
class Outcome:
    state: str  # finished | stopped
    step: int
    total_steps: int
    checkpoint: str | None
    message: str


def seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def deepspeed_dict(cfg: RunConfig, session: Session, model_dir: str) -> dict | None:
    """The DeepSpeed config with its "auto" values filled; rank 0 saves it as RUN_DIR/deepspeed.json."""
    if not cfg.distributed.deepspeed:
        return None
    import json

    from tunesmith.core.train.deepspeed import fill_auto, load_deepspeed_config
    from tunesmith.core.train.models import resolve_precision

    hidden = _hidden_size(model_dir, cfg.model.trust_remote_code)
    ds = fill_auto(load_deepspeed_config(cfg.distributed.deepspeed), cfg, world_size=session.ctx.world_size,
                   precision=resolve_precision(cfg), hidden_size=hidden)
    if session.ctx.is_main:
        (session.rd.path / "deepspeed.json").write_text(json.dumps(ds, indent=2) + "\n", encoding="utf-8")
    return ds


def _hidden_size(model_dir: str, trust_remote_code: bool) -> int | None:
    try:
        from transformers import AutoConfig

        conf = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        conf = getattr(conf, "text_config", None) or conf
        return int(getattr(conf, "hidden_size", 0) or 0) or None
    except Exception:  # an unusual config: leave the bucket sizes to DeepSpeed
        return None


def training_kwargs(cfg: RunConfig, rd: RunDir, ctx: DistContext, *, has_eval: bool, deepspeed: dict | None) -> dict:
    """Keyword arguments for TrainingArguments (or TRL's DPOConfig/ORPOConfig) from the RunConfig."""
    from tunesmith.core.train.models import has_cuda, resolve_optimizer, resolve_precision

    t = cfg.training
    precision = resolve_precision(cfg)
    cuda = has_cuda()
    eval_every = t.eval_steps or t.save_steps
    kwargs = dict(
        output_dir=str(rd.checkpoints_dir),
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation, learning_rate=t.learning_rate,
        num_train_epochs=t.num_epochs if t.num_epochs > 0 else 1.0, max_steps=t.max_steps,
        lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm, optim=resolve_optimizer(cfg, cuda=cuda), seed=t.seed, data_seed=t.seed,
        logging_strategy="steps", logging_steps=t.logging_steps,
        save_strategy="steps" if t.save_steps > 0 else "no", save_steps=max(1, t.save_steps),
        save_total_limit=None,  # rotated by RunTrainerMixin only after the new checkpoint is in place
        eval_strategy="steps" if has_eval and eval_every > 0 else "no", eval_steps=max(1, eval_every),
        bf16=precision == "bf16", fp16=precision == "fp16",
        use_cpu=not cuda and not deepspeed, ddp_backend="gloo" if not cuda and ctx.distributed else None,
        ddp_find_unused_parameters=False,
        # offloaded checkpoints are set up by load_model; the Trainer's own call would replace them
        activation_checkpointing=cfg.model.gradient_checkpointing and not cfg.model.offload_checkpoints,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.model.gradient_checkpointing else None,
        report_to=trainer_report_to(cfg.training.report_to, rd.path), disable_tqdm=True, dataloader_num_workers=0,
        include_num_input_tokens_seen="all", deepspeed=deepspeed,
    )
    return kwargs


def standard_callbacks(cfg: RunConfig, session: Session, tokenizer, *, template: str, zero3: bool) -> list:
    samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation * session.ctx.world_size
    return [
        StopCallback(session.rd, session.ctx, session.stop, stop_at_step=session.faults.stop_at_step),
        RunMetricsCallback(session.rd, session.ctx, samples_per_step=samples_per_step,
                           sinks=metric_sinks(cfg.training.report_to, session.rd.path, session.ctx.is_main)),
        EvalChatCallback(session.rd, session.ctx, tokenizer, template=template, prompts=list(cfg.eval.prompts),
                         system=cfg.data.system, every_n_steps=cfg.eval.every_n_steps,
                         max_new_tokens=cfg.eval.max_new_tokens, zero3=zero3, seed=cfg.training.seed),
    ]


@dataclass
class Prepared:
    """What every workflow has before it builds its trainer (see :func:`prepare`)."""

    tokenizer: object
    args: object        # the TrainingArguments (or TRL's config class) the trainer gets
    data: object        # BuiltData: train, eval, stats, template
    model: object
    deepspeed: dict | None
    has_eval: bool

    @property
    def eval_dataset(self):
        """The eval split when there is one to evaluate on, else None."""
        return self.data.eval if self.has_eval and self.data.eval is not None and len(self.data.eval) else None

    def callbacks(self, cfg: RunConfig, session: Session) -> list:
        from tunesmith.core.train.deepspeed import zero_stage

        return standard_callbacks(cfg, session, self.tokenizer, template=self.data.template,
                                  zero3=bool(self.deepspeed) and zero_stage(self.deepspeed) == 3)


def prepare(cfg: RunConfig, session: Session, *, make_args, build_data, data_message: str, empty,
            add_adapters: bool = True) -> Prepared:
    """The steps SFT/pretraining and DPO/ORPO share, in their order: tokenizer, DeepSpeed config, training
    arguments (before the model: under ZeRO-3 they must exist before it is built, sharded), the data
    (built once, on the main process first), its stats in status.json, the model; a stop request is
    honoured between the long steps.

    ``make_args(training_kwargs) -> args``; ``build_data(tokenizer, on_rows) -> BuiltData``; ``empty``:
    the DataError raised when no training row is left; ``add_adapters=False`` when the trainer adds the
    LoRA adapter itself (TRL's peft_config).
    """
    from tunesmith.core.train.models import load_model, load_tokenizer, model_path

    session.phase("Loading the tokenizer.", "loading_tokenizer")
    path = model_path(cfg)
    tokenizer = load_tokenizer(cfg, path)
    ds = deepspeed_dict(cfg, session, path)
    has_eval = cfg.data.eval_size > 0
    args = make_args(training_kwargs(cfg, session.rd, session.ctx, has_eval=has_eval, deepspeed=ds))
    session.phase(data_message, "tokenizing")
    with args.main_process_first(desc="dataset"):
        data = build_data(tokenizer, lambda n: session.phase(f"Tokenising {n} rows.", "tokenizing", total=n))
    if len(data.train) == 0:
        raise empty
    if session.ctx.is_main:
        session.rd.write_status(dataset=dataset_stats(data))
    session.check_stop("preparing the dataset")

    session.phase("Loading the model.", "loading_model")
    seed_everything(cfg.training.seed)  # LoRA/new weights are drawn from the global RNG
    model = load_model(cfg, local_rank=session.ctx.local_rank, deepspeed=ds is not None, path=path,
                       add_adapters=add_adapters)
    session.check_stop("loading the model")
    return Prepared(tokenizer=tokenizer, args=args, data=data, model=model, deepspeed=ds, has_eval=has_eval)


def dataset_stats(data) -> dict:
    """The JSON-safe part of the data's stats for status.json (kept / dropped rows, lengths), with row counts."""
    stats = getattr(data, "stats", None)
    if stats is None:
        return {"train_rows": len(data.train)}
    to_dict = getattr(stats, "to_dict", None)
    out = to_dict() if callable(to_dict) else {}
    out = {k: v for k, v in out.items() if isinstance(v, (int, float, str, bool)) or v is None}
    out["train_rows"] = len(data.train)
    out["eval_rows"] = len(data.eval) if data.eval is not None else 0
    return out


def run_trainer(trainer, cfg: RunConfig, session: Session, *, has_eval: bool) -> Outcome:
    """Train (resuming when asked), evaluate at the end if the schedule missed it, report the outcome."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for noisy in (PrinterCallback, ProgressCallback):  # our own progress lines go to train.log
        trainer.remove_callback(noisy)
    limit = cfg.training.save_total_limit
    trainer.setup_run(session.rd, cfg, save_limit=limit, faults=session.faults)
    resume = cfg.training.resume_from or None
    if resume:
        from tunesmith.core.train.trainer import checkpoint_step

        step = checkpoint_step(resume)
        if session.ctx.is_main:
            session.rd.truncate_metrics_after(step)
        session.phase(f"Resuming from {Path(resume).name}.")
    session.check_stop("loading")
    trainer.train(resume_from_checkpoint=resume)
    stop_cb = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, StopCallback))
    state = trainer.state
    if has_eval and stop_cb.stopped_at is None and not _evaluated_at(state, state.global_step):
        session.phase("Evaluating on the held-out split.", "evaluating")
        trainer.evaluate()
    latest = session.rd.latest_checkpoint()
    if stop_cb.stopped_at is not None:
        return Outcome("stopped", state.global_step, state.max_steps, latest.name if latest else None,
                       f"Stopped at step {state.global_step}; resume from {latest.name if latest else 'the start'}.")
    return Outcome("finished", state.global_step, state.max_steps, latest.name if latest else None,
                   f"Finished {state.global_step} steps; the trained model is {latest.name if latest else '-'}.")


def _evaluated_at(state, step: int) -> bool:
    return any("eval_loss" in rec and rec.get("step") == step for rec in state.log_history)
