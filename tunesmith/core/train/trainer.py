"""What our trainers add to HF Trainer / TRL trainers (a mixin, so SFT, DPO and ORPO share it).

* Crash-safe checkpoints: HF writes ``checkpoint-N`` in place, so a kill mid-save leaves a folder
  that looks complete. We let it write into ``checkpoints/.staging/checkpoint-N``, fsync, and
  rename into ``checkpoints/`` only when every rank is done; old checkpoints are rotated only
  after the new one is in place, so a failed save (disk full) never costs the previous one.
* The RunConfig goes into every checkpoint as ``config.yaml``.
* Exact token counts: the collator reports real (non-padding) tokens per batch as ``num_tokens``,
  removed here before the model sees the batch.
* SFT's loss without full logits (:class:`LogitFreeLossMixin`, ``training.loss``).
* Fault injection for the reliability tests (``TUNESMITH_FAULT``, see :class:`Faults`).
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tunesmith.core.train.dist import barrier
from tunesmith.core.train.rundir import CHECKPOINT_RE, RunDir, fsync_dir, fsync_tree


@dataclass
class Faults:
    """Parsed ``TUNESMITH_FAULT``, e.g. ``oom_at_step:3,sleep_per_step:0.2,disk_full_at_save:4``.

    ``stop_at_step`` writes the STOP file at that step, exactly as a user pressing Stop would.

    >>> Faults.parse("oom_at_step:3,sleep_per_step:0.5")
    Faults(oom_at_step=3, disk_full_at_save=0, crash_at_step=0, stop_at_step=0, sleep_per_step=0.5)
    """

    oom_at_step: int = 0
    disk_full_at_save: int = 0
    crash_at_step: int = 0
    stop_at_step: int = 0
    sleep_per_step: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> "Faults":
        out = cls()
        for item in filter(None, (text or "").split(",")):
            key, _, value = item.partition(":")
            if hasattr(out, key.strip()):
                kind = type(getattr(out, key.strip()))
                setattr(out, key.strip(), kind(value or 0))
        return out

    @classmethod
    def from_env(cls) -> "Faults":
        return cls.parse(os.environ.get("TUNESMITH_FAULT"))


class RunTrainerMixin:
    """Mix in before a transformers/TRL Trainer class; call :meth:`setup_run` after ``__init__``."""

    run_dir: RunDir
    run_config = None
    save_limit: int = 0
    faults: Faults = Faults()
    _staging: bool = False

    def setup_run(self, rd: RunDir, run_config, *, save_limit: int, faults: Faults | None = None) -> None:
        self.run_dir = rd
        self.run_config = run_config
        self.save_limit = save_limit
        self.faults = faults or Faults()

    # ---- inputs -------------------------------------------------------------------------------
    def _prepare_inputs(self, inputs):
        inputs = super()._prepare_inputs(inputs)
        if isinstance(inputs, dict):
            inputs.pop("num_tokens", None)
        return inputs

    def _track_num_input_tokens(self, inputs):
        import torch

        if "num_tokens" in inputs:
            count = inputs["num_tokens"]
        else:  # TRL batches: count every attention mask (chosen + rejected), else every input_ids tensor
            masks = [v for k, v in inputs.items() if k.endswith("attention_mask") and torch.is_tensor(v)]
            ids = [v for k, v in inputs.items() if k.endswith("input_ids") and torch.is_tensor(v)]
            count = sum(int(m.sum()) for m in masks) if masks else sum(v.numel() for v in ids)
        count = torch.as_tensor(count, device=self.args.device, dtype=torch.int64)
        self.state.num_input_tokens_seen += int(self.accelerator.gather(count).sum().item())

    # ---- faults -------------------------------------------------------------------------------
    def training_step(self, model, inputs, num_items_in_batch=None):
        f = self.faults
        step = self.state.global_step + 1  # the optimizer step being computed
        if f.oom_at_step and step >= f.oom_at_step:
            import torch

            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.00 GiB (fault injection at step "
                                         f"{step})")
        if f.crash_at_step and step >= f.crash_at_step:
            raise RuntimeError(f"injected crash at step {step}")
        if f.sleep_per_step:
            time.sleep(f.sleep_per_step / max(1, self.args.gradient_accumulation_steps))
        return super().training_step(model, inputs, num_items_in_batch)

    def _save_rng_state(self, output_dir):
        super()._save_rng_state(output_dir)
        if self.faults.disk_full_at_save and self.state.global_step >= self.faults.disk_full_at_save:
            path = os.path.join(output_dir, "optimizer.pt")
            raise OSError(errno.ENOSPC, "No space left on device (fault injection)", path)

    # ---- crash-safe checkpoints ---------------------------------------------------------------
    def _get_output_dir(self, trial):
        if self._staging:
            return str(self.run_dir.staging_dir)
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        name = f"checkpoint-{self.state.global_step}"
        staged = self.run_dir.staging_dir / name
        final = self.run_dir.checkpoints_dir / name
        main = self.args.should_save
        if main:  # a big model's save takes a while: say so instead of a frozen last step
            self.run_dir.write_status(phase="saving", phase_done=None, phase_total=None, phase_at=time.time(),
                                      phase_step=self.state.global_step)
        if main and staged.exists():
            shutil.rmtree(staged)
        barrier()
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
            if main and self.run_config is not None:
                self.run_config.save(staged / "config.yaml")
        except BaseException:
            if main:
                shutil.rmtree(staged, ignore_errors=True)  # free the space; the previous checkpoint is untouched
            raise
        finally:
            self._staging = False
        barrier()  # every rank has written its shard
        if main:
            fsync_tree(staged)
            if final.exists():  # same step saved twice (e.g. stop at a save step): keep the newer one
                shutil.rmtree(final)
            os.replace(staged, final)
            fsync_dir(self.run_dir.checkpoints_dir)
            self._rotate()
            self.run_dir.write_status(latest_checkpoint=name, latest_checkpoint_step=self.state.global_step)
        barrier()

    def _rotate(self) -> None:
        if self.save_limit <= 0:
            return
        ckpts = self.run_dir.list_checkpoints()
        for old in ckpts[: max(0, len(ckpts) - self.save_limit)]:
            if CHECKPOINT_RE.match(old.name):
                shutil.rmtree(old, ignore_errors=True)


class LogitFreeLossMixin:
    """SFT/pretraining loss without the batch x seq x vocab logits (``training.loss``, see core/train/loss.py).

    The batch still goes through ``model(...)`` (so DDP/accelerate wrappers see the forward), with the
    output head's forward swapped for one that hands back the hidden states it was given and an empty
    logits tensor; the loss is then computed from those hidden states and the head's weight, with the
    Trainer's own normalisation (``num_items_in_batch`` only when the model takes loss kwargs, times the
    number of processes when tokens are averaged across devices).
    """

    loss_impl: str = "standard"

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        found = None
        if self.loss_impl != "standard" and not return_outputs and "labels" in inputs \
                and self.label_smoother is None and self.compute_loss_func is None:
            from tunesmith.core.train.loss import output_head

            found = output_head(self.accelerator.unwrap_model(model))
        if found is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        from tunesmith.core.train.loss import chunked_causal_lm_loss, liger_causal_lm_loss

        decoder, weight = found
        base = self.accelerator.unwrap_model(model)
        base = base.get_base_model() if hasattr(base, "get_base_model") else base
        head = base.get_output_embeddings()
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        captured = []

        def keep_hidden(hidden):
            captured.append(hidden)
            return hidden[..., :0]

        head.forward = keep_hidden
        try:
            model(**inputs)
        finally:
            del head.forward
        items = num_items_in_batch if self.model_accepts_loss_kwargs else None
        fn = liger_causal_lm_loss if self.loss_impl == "liger" else chunked_causal_lm_loss
        loss = fn(captured[0], weight, labels, num_items_in_batch=items)
        if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs \
                and num_items_in_batch is not None:
            scale = self.accelerator.num_processes // self.get_tp_size()
            loss = loss * (scale if self.args.n_gpu <= 1 else self.args.n_gpu)
        return loss


def checkpoint_step(path: str | Path) -> int:
    match = CHECKPOINT_RE.match(Path(path).name)
    return int(match.group(1)) if match else 0


def with_run_mixin(trainer_cls, *, logit_free_loss: bool = False):
    """``Trainer`` -> a subclass with :class:`RunTrainerMixin` (and :class:`LogitFreeLossMixin`), cached."""
    key = (trainer_cls, logit_free_loss)
    cached = _CLASSES.get(key)
    if cached is None:
        bases = (RunTrainerMixin, LogitFreeLossMixin, trainer_cls) if logit_free_loss else (RunTrainerMixin, trainer_cls)
        cached = type(f"Run{trainer_cls.__name__}", bases, {})
        _CLASSES[key] = cached
    return cached


_CLASSES: dict = {}
