"""Supervised fine-tuning and incremental pretraining with HF Trainer."""

from __future__ import annotations

from tunesmith.core.config import RunConfig
from tunesmith.core.errors import DataError
from tunesmith.core.train.collate import PackedCollator
from tunesmith.core.train.workflow import Outcome, Session, prepare, run_trainer


def run_sft(cfg: RunConfig, session: Session) -> Outcome:
    from transformers import Trainer, TrainingArguments

    from tunesmith.core.data.pipeline import build_sft_data
    from tunesmith.core.train.models import resolve_attn, resolve_loss
    from tunesmith.core.train.trainer import with_run_mixin

    ready = prepare(
        cfg, session, data_message="Preparing the dataset.",
        make_args=lambda kwargs: TrainingArguments(**kwargs, remove_unused_columns=False),
        build_data=lambda tokenizer, on_rows: build_sft_data(
            cfg.data, tokenizer, model_name_or_path=cfg.model.name_or_path, stage=cfg.method.stage,
            seed=cfg.training.seed, on_rows=on_rows),
        empty=DataError(f"no training samples are left in {cfg.data.path} after mapping and filtering.",
                        "Check data.map_fn / data.columns with `python -m tunesmith check-dataset`."))
    collator = PackedCollator(ready.tokenizer.pad_token_id, flatten=resolve_attn(cfg) == "flash_attention_2")
    loss_impl = resolve_loss(cfg)
    trainer_cls = with_run_mixin(Trainer, logit_free_loss=loss_impl != "standard")
    trainer = trainer_cls(model=ready.model, args=ready.args, train_dataset=ready.data.train,
                          eval_dataset=ready.eval_dataset, data_collator=collator, processing_class=ready.tokenizer,
                          callbacks=ready.callbacks(cfg, session))
    trainer.loss_impl = loss_impl
    return run_trainer(trainer, cfg, session, has_eval=trainer.eval_dataset is not None)
