"""Preference tuning (DPO, ORPO) with TRL on prompt / chosen / rejected pairs.

The base model is loaded as for SFT (4-bit for QLoRA) but the LoRA adapter is handed to TRL as a
``peft_config``: TRL then computes the DPO reference log-probs with the adapter disabled instead
of keeping a second copy of the model. Full fine-tuning DPO lets TRL copy the model as reference.
"""

from __future__ import annotations

from core.config import RunConfig
from core.errors import DataError
from core.train.workflow import (Outcome, Session, deepspeed_dict, run_trainer, seed_everything, standard_callbacks,
                                 training_kwargs)


def run_preference(cfg: RunConfig, session: Session) -> Outcome:
    from core.data.preference import build_preference_data
    from core.train.deepspeed import zero_stage
    from core.train.models import load_model, load_tokenizer, lora_config, model_path
    from core.train.trainer import with_run_mixin

    stage = cfg.method.stage
    session.phase("Loading the tokenizer.")
    path = model_path(cfg)
    tokenizer = load_tokenizer(cfg, path)
    ds = deepspeed_dict(cfg, session, path)
    has_eval = cfg.data.eval_size > 0
    kwargs = training_kwargs(cfg, session.rd, session.ctx, has_eval=has_eval, deepspeed=ds)
    if stage == "dpo":
        from trl import DPOConfig as ConfigCls
        from trl import DPOTrainer as TrainerCls

        extra = {"beta": cfg.method.pref_beta, "loss_type": [cfg.method.dpo_loss], "max_length": cfg.data.max_length}
    else:
        from trl.experimental.orpo import ORPOConfig as ConfigCls
        from trl.experimental.orpo import ORPOTrainer as TrainerCls

        completion = max(16, cfg.data.max_length - cfg.method.max_prompt_length)
        extra = {"beta": cfg.method.pref_beta, "max_length": cfg.data.max_length, "max_completion_length": completion}
    args = ConfigCls(**kwargs, **extra)

    session.phase("Preparing the preference pairs.")
    with args.main_process_first(desc="dataset"):
        data = build_preference_data(cfg.data, tokenizer, model_name_or_path=cfg.model.name_or_path,
                                     seed=cfg.training.seed)
    if len(data.train) == 0:
        raise DataError(f"no preference pairs are left in {cfg.data.path}.",
                        "Each row needs a prompt and a chosen and a rejected answer (see docs/training.md).")
    if session.ctx.is_main:
        from core.train.sft import _stats

        session.rd.write_status(dataset=_stats(data))  # kept / dropped pairs, as for SFT
    session.check_stop("preparing the dataset")

    session.phase("Loading the model.")
    seed_everything(cfg.training.seed)  # LoRA/new weights are drawn from the global RNG
    model = load_model(cfg, local_rank=session.ctx.local_rank, deepspeed=ds is not None, path=path,
                       add_adapters=False)
    session.check_stop("loading the model")
    trainer_cls = with_run_mixin(TrainerCls)
    eval_ds = data.eval if has_eval and data.eval is not None and len(data.eval) else None
    trainer = trainer_cls(model=model, args=args, train_dataset=data.train, eval_dataset=eval_ds,
                          processing_class=tokenizer, peft_config=lora_config(cfg) if cfg.uses_lora else None,
                          callbacks=standard_callbacks(cfg, session, tokenizer, template=data.template,
                                                       zero3=bool(ds) and zero_stage(ds) == 3))
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
                        "prompts (`python -m core check-dataset --stage "
                        f"{cfg.method.stage} --max-length N` counts them).")
    if keep.num_rows < train.num_rows:
        trainer.train_dataset = keep
