"""Supervised fine-tuning and incremental pretraining with HF Trainer."""

from __future__ import annotations

from core.config import RunConfig
from core.errors import DataError
from core.train.collate import PackedCollator
from core.train.workflow import (Outcome, Session, deepspeed_dict, run_trainer, seed_everything, standard_callbacks,
                                 training_kwargs)


def run_sft(cfg: RunConfig, session: Session) -> Outcome:
    from transformers import Trainer, TrainingArguments

    from core.data.pipeline import build_sft_data
    from core.train.deepspeed import zero_stage
    from core.train.models import load_model, load_tokenizer, model_path, resolve_attn, resolve_loss
    from core.train.trainer import with_run_mixin

    session.phase("Loading the tokenizer.", "loading_tokenizer")
    path = model_path(cfg)
    tokenizer = load_tokenizer(cfg, path)
    ds = deepspeed_dict(cfg, session, path)
    has_eval = cfg.data.eval_size > 0
    # TrainingArguments first: under ZeRO-3 it must exist before the model is built (sharded init).
    args = TrainingArguments(**training_kwargs(cfg, session.rd, session.ctx, has_eval=has_eval, deepspeed=ds),
                             remove_unused_columns=False)
    session.phase("Preparing the dataset.", "tokenizing")
    with args.main_process_first(desc="dataset"):
        data = build_sft_data(cfg.data, tokenizer, model_name_or_path=cfg.model.name_or_path,
                              stage=cfg.method.stage, seed=cfg.training.seed,
                              on_rows=lambda n: session.phase(f"Tokenising {n} rows.", "tokenizing", total=n))
    if len(data.train) == 0:
        raise DataError(f"no training samples are left in {cfg.data.path} after mapping and filtering.",
                        "Check data.map_fn / data.columns with `python -m core check-dataset`.")
    if session.ctx.is_main:
        session.rd.write_status(dataset=_stats(data))
    session.check_stop("preparing the dataset")

    session.phase("Loading the model.", "loading_model")
    seed_everything(cfg.training.seed)  # LoRA/new weights are drawn from the global RNG
    model = load_model(cfg, local_rank=session.ctx.local_rank, deepspeed=ds is not None, path=path)
    session.check_stop("loading the model")
    collator = PackedCollator(tokenizer.pad_token_id, flatten=resolve_attn(cfg) == "flash_attention_2")
    loss_impl = resolve_loss(cfg)
    trainer_cls = with_run_mixin(Trainer, logit_free_loss=loss_impl != "standard")
    trainer = trainer_cls(model=model, args=args, train_dataset=data.train,
                          eval_dataset=data.eval if has_eval and data.eval is not None and len(data.eval) else None,
                          data_collator=collator, processing_class=tokenizer,
                          callbacks=standard_callbacks(cfg, session, tokenizer, template=data.template,
                                                       zero3=bool(ds) and zero_stage(ds) == 3))
    trainer.loss_impl = loss_impl
    return run_trainer(trainer, cfg, session, has_eval=trainer.eval_dataset is not None)


def _stats(data) -> dict:
    stats = getattr(data, "stats", None)
    if stats is None:
        return {"train_rows": len(data.train)}
    to_dict = getattr(stats, "to_dict", None)
    out = to_dict() if callable(to_dict) else {}
    out = {k: v for k, v in out.items() if isinstance(v, (int, float, str, bool)) or v is None}
    out["train_rows"] = len(data.train)
    out["eval_rows"] = len(data.eval) if data.eval is not None else 0
    return out
