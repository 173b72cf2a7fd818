"""Preference tuning (DPO, ORPO) with TRL on prompt / chosen / rejected pairs.

The base model is loaded as for SFT (4-bit for QLoRA) but the LoRA adapter is handed to TRL as a
``peft_config``: TRL then computes the DPO reference log-probs with the adapter disabled instead
of keeping a second copy of the model. Full fine-tuning DPO lets TRL copy the model as reference.
"""

from __future__ import annotations

from tunesmith.core.config import RunConfig
from tunesmith.core.errors import DataError
from tunesmith.core.train.workflow import Outcome, Session, prepare, run_trainer


def run_preference(cfg: RunConfig, session: Session) -> Outcome:
    from tunesmith.core.data.preference import build_preference_data
    from tunesmith.core.train.models import lora_config
    from tunesmith.core.train.trainer import with_run_mixin

    if cfg.method.stage == "dpo":
        from trl import DPOConfig as ConfigCls
        from trl import DPOTrainer as TrainerCls

        extra = {"beta": cfg.method.pref_beta, "loss_type": [cfg.method.dpo_loss], "max_length": cfg.data.max_length}
    else:
        from trl.experimental.orpo import ORPOConfig as ConfigCls
        from trl.experimental.orpo import ORPOTrainer as TrainerCls

        completion = max(16, cfg.data.max_length - cfg.method.max_prompt_length)
        extra = {"beta": cfg.method.pref_beta, "max_length": cfg.data.max_length, "max_completion_length": completion}
    ready = prepare(
        cfg, session, data_message="Preparing the preference pairs.", add_adapters=False,
        make_args=lambda kwargs: ConfigCls(**kwargs, **extra),
        build_data=lambda tokenizer, on_rows: build_preference_data(
            cfg.data, tokenizer, model_name_or_path=cfg.model.name_or_path, seed=cfg.training.seed),
        empty=DataError(f"no preference pairs are left in {cfg.data.path}.",
                        "Each row needs a prompt and a chosen and a rejected answer (see docs/training.md)."))
    trainer_cls = with_run_mixin(TrainerCls)
    eval_ds = ready.eval_dataset
    trainer = trainer_cls(model=ready.model, args=ready.args, train_dataset=ready.data.train, eval_dataset=eval_ds,
                          processing_class=ready.tokenizer, peft_config=lora_config(cfg) if cfg.uses_lora else None,
                          callbacks=ready.callbacks(cfg, session))
    _keep_pairs_with_answers(trainer, cfg)
    return run_trainer(trainer, cfg, session, has_eval=eval_ds is not None)


def _answer_left(stage: str, max_length: int):
    """Whether a pair as TRL tokenised it keeps an answer token within max_length."""
    if stage == "orpo":  # the prompt is kept whole, the answers get what is left
        return lambda r: any(t != -100 for t in r["chosen_labels"]) and any(t != -100 for t in r["rejected_labels"])
    return lambda r: len(r["prompt_ids"]) < max_length and bool(r["chosen_ids"]) and bool(r["rejected_ids"])


def _keep_pairs_with_answers(trainer, cfg: RunConfig) -> None:
    """Train only on pairs TRL left an answer in, and refuse a run with none.

    build_preference_data already drops pairs whose prompt fills max_length; this catches any the
    estimate missed (TRL's own tokenising decides). A pair without answer tokens makes ORPO's loss NaN
    (logged as 0.0, grad_norm null, weights ruined) and DPO learns nothing from it.
    """
    train = trainer.train_dataset
    cols = set(getattr(train, "column_names", None) or [])
    needed = {"chosen_labels", "rejected_labels"} if cfg.method.stage == "orpo" else {"prompt_ids", "chosen_ids",
                                                                                    "rejected_ids"}
    if train is None or not needed <= cols:
        return
    keep = train.filter(_answer_left(cfg.method.stage, cfg.data.max_length), desc="Pairs with answers")
    if keep.num_rows == 0:
        raise DataError(f"no preference pair in {cfg.data.path} keeps an answer token within data.max_length "
                        f"{cfg.data.max_length}: the prompts fill it, so there is nothing to learn from.",
                        "Raise data.max_length above the prompts' length plus room for the answers, or shorten the "
                        "prompts (`python -m tunesmith check-dataset --stage "
                        f"{cfg.method.stage} --max-length N` counts them).")
    if keep.num_rows < train.num_rows:
        trainer.train_dataset = keep
