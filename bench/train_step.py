"""Benchmark: step time of Tunesmith's trainer vs a plain HF Trainer + PEFT script, and padding efficiency.

Both trainers run in this process on the same small random Llama (SmolLM2 vocabulary), the same
LoRA settings and the same packed batches. "Ours" is the trainer the run folder gets: our
collator (no attention mask, position-id restarts), token counting, crash-safe checkpoint code
paths and the metrics/status/stop callbacks writing to a run folder every step. The plain one is
the few lines a user would write: ``Trainer(model=get_peft_model(...), data_collator=pad+mask)``.
The measured figure is the median CPU time of an optimizer step after warm-up (wall time is
printed too; on a machine shared with other work it swings far more than the difference measured);
the two are run alternately, several rounds. Target: ratio <= 1.05.

Both get identical batches (our collator's output), so the ratio is the cost of what our trainer adds
per step, not of the data layout.

Padding efficiency = (supervised + context tokens) / all tokens in the batches, with and without
packing, on LLaMA-Factory's alpaca_en_demo (from ../shared/data; the identity demo when absent).

    python bench/train_step.py [--steps 20] [--rounds 4] [--hidden 128] [--layers 2] [--seq 256]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_model(out_dir: Path, tokenizer_dir: Path, hidden: int, layers: int) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 3,
                         num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(
                             1, hidden // 128), max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


class StepTimer:
    """A TrainerCallback recording the wall time and the CPU time of every optimizer step.

    CPU time (all threads of this process) is the figure to compare on a shared machine: other
    processes stretch wall time a lot but barely change the work one step costs.
    """

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer.t, timer.c = time.perf_counter(), time.process_time()

            def on_step_end(self, args, state, control, **kw):
                timer.times.append(time.perf_counter() - timer.t)
                timer.cpu.append(time.process_time() - timer.c)

        self.times: list[float] = []
        self.cpu: list[float] = []
        self.t = self.c = 0.0
        self.callback = _CB()

    def median(self, warmup: int) -> tuple[float, float]:
        return statistics.median(self.times[warmup:]), statistics.median(self.cpu[warmup:])


def plain_trainer(cfg, data, steps: int, out_dir: Path):
    """What a user would write with HF Trainer + PEFT, fed the very same batches as ours."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from tunesmith.core.train.collate import PackedCollator

    tok = AutoTokenizer.from_pretrained(cfg.model.name_or_path)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(cfg.model.name_or_path, dtype=torch.float32,
                                                 attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    ours = PackedCollator(tok.pad_token_id)

    def collate(rows):  # identical tensors; only our token counter is left out
        batch = ours(rows)
        batch.pop("num_tokens")
        return batch

    args = TrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=cfg.training.batch_size,
                             gradient_accumulation_steps=cfg.training.gradient_accumulation, max_steps=steps,
                             learning_rate=cfg.training.learning_rate, optim=cfg.training.optimizer,
                             lr_scheduler_type=cfg.training.lr_scheduler, logging_steps=1, save_strategy="no",
                             report_to="none", use_cpu=True, remove_unused_columns=False, disable_tqdm=True,
                             seed=cfg.training.seed)
    timer = StepTimer()
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collate, callbacks=[timer.callback])
    return trainer, timer


def our_trainer(cfg, data, steps: int, run_dir: Path):
    """Tunesmith's trainer as the entry process builds it (callbacks, collator, mixin, run folder)."""
    from transformers import Trainer, TrainingArguments

    from tunesmith.core.train.callbacks import StopFlag
    from tunesmith.core.train.collate import PackedCollator
    from tunesmith.core.train.dist import DistContext
    from tunesmith.core.train.models import load_model, load_tokenizer, resolve_loss
    from tunesmith.core.train.rundir import RunDir
    from tunesmith.core.train.trainer import with_run_mixin
    from tunesmith.core.train.workflow import Session, seed_everything, standard_callbacks, training_kwargs

    rd = RunDir(run_dir)
    rd.path.mkdir(parents=True, exist_ok=True)
    session = Session(rd=rd, ctx=DistContext(), stop=StopFlag())
    cfg = cfg.with_overrides([f"training.max_steps={steps}", "training.save_steps=0"])
    tok = load_tokenizer(cfg)
    args = TrainingArguments(**training_kwargs(cfg, rd, session.ctx, has_eval=False, deepspeed=None),
                             remove_unused_columns=False)
    seed_everything(cfg.training.seed)
    model = load_model(cfg)
    timer = StepTimer()
    callbacks = standard_callbacks(cfg, session, tok, template="chat_template", zero3=False) + [timer.callback]
    loss_impl = resolve_loss(cfg)  # as core/train/sft.py: the chunked loss for LoRA
    trainer = with_run_mixin(Trainer, logit_free_loss=loss_impl != "standard")(
        model=model, args=args, train_dataset=data, data_collator=PackedCollator(tok.pad_token_id),
        processing_class=tok, callbacks=callbacks)
    trainer.loss_impl = loss_impl
    trainer.setup_run(rd, cfg, save_limit=0)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer, timer


def padding_report(cfg, tokenizer, data_path: Path, map_fn: str, max_length: int) -> tuple[float, float]:
    from tunesmith.core.data.pipeline import build_sft_data
    from tunesmith.core.train.collate import PackedCollator, padding_efficiency

    out = []
    for pack in (True, False):
        data_cfg = dataclasses.replace(cfg.data, pack=pack, path=str(data_path), map_fn=map_fn, max_length=max_length)
        data = build_sft_data(data_cfg, tokenizer,
                              model_name_or_path=cfg.model.name_or_path, seed=0).train
        collate = PackedCollator(tokenizer.pad_token_id)
        bs = cfg.training.batch_size
        rows = [data[i] for i in range(len(data))]
        out.append(padding_efficiency(collate(rows[i:i + bs]) for i in range(0, len(rows), bs)))
    return out[0], out[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--pad-length", type=int, default=1024, help="max_length for the padding report")
    args = parser.parse_args()

    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tunesmith.core.data.pipeline import build_sft_data
    from tunesmith.core.gguf_import import ensure_embedded_tokenizer
    from tunesmith.core.paths import assets_dir
    from tunesmith.core.train.models import load_tokenizer
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from toy import toy_config  # test data, kept in tests/

    tmp = Path(tempfile.mkdtemp(prefix="tunesmith-bench-"))
    model_dir = make_model(tmp / "model", ensure_embedded_tokenizer(), args.hidden, args.layers)
    data_path = assets_dir() / "identity.json"
    cfg = toy_config(model_dir, data_path, overrides=[
        f"data.max_length={args.seq}", "data.pack=true", f"training.batch_size={args.batch}",
        "training.gradient_accumulation=1", "data.template=chat_template", "data.map_fn=openai", "eval.prompts=[]",
        "lora.r=16", "lora.alpha=32", "lora.dropout=0.0"])
    tokenizer = load_tokenizer(cfg)
    data = build_sft_data(cfg.data, tokenizer, model_name_or_path=str(model_dir), seed=0).train
    while len(data) < args.batch * (args.steps + 1):  # enough distinct batches for every step
        from datasets import concatenate_datasets

        data = concatenate_datasets([data, data])
    print(f"model: {args.layers} layers x {args.hidden} hidden, LoRA r=16; batch {args.batch} x <= {args.seq} tokens "
          f"(packed), {args.steps} steps x {args.rounds} rounds")

    plain_t, ours_t = [], []
    for r in range(args.rounds):
        order = [("plain", plain_trainer, plain_t), ("ours", our_trainer, ours_t)]
        for name, build, times in (order if r % 2 == 0 else order[::-1]):  # alternate who goes first
            trainer, timer = build(cfg, data, args.steps, tmp / f"{name}{r}")
            trainer.train()
            times.append(timer.median(args.warmup))
            del trainer
        print(f"round {r + 1}: plain {plain_t[-1][0] * 1000:.1f} ms/step wall, {plain_t[-1][1] * 1000:.1f} ms cpu; "
              f"ours {ours_t[-1][0] * 1000:.1f} ms wall, {ours_t[-1][1] * 1000:.1f} ms cpu")
    wall = statistics.median(o[0] for o in ours_t) / statistics.median(p[0] for p in plain_t)
    cpu_plain = statistics.median(p[1] for p in plain_t)
    cpu_ours = statistics.median(o[1] for o in ours_t)
    print(f"step time (CPU time per step, median): plain HF Trainer + PEFT {cpu_plain * 1000:.1f} ms, "
          f"Tunesmith {cpu_ours * 1000:.1f} ms, ratio {cpu_ours / cpu_plain:.3f} (target <= 1.05); "
          f"wall-time ratio {wall:.3f}")
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "llamafactory" / "alpaca_en_demo.json"
    pad_data, pad_map = (shared, "alpaca") if shared.is_file() else (data_path, "openai")
    packed, unpacked = padding_report(cfg, tokenizer, pad_data, pad_map, args.pad_length)
    print(f"padding efficiency on {pad_data.name} (supervised + context tokens / all tokens, batch {args.batch}, "
          f"max_length {args.pad_length}): packed {packed:.3f}, unpacked {unpacked:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
