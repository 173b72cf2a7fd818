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
    return run_trainer(trainer, cfg, session, has_eval=eval_ds is not None)
