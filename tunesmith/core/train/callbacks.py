"""Trainer callbacks that make a run observable and stoppable from outside.

* :class:`RunMetricsCallback`  metrics.jsonl lines + status.json progress (rank 0 only);
* :class:`StopCallback`        STOP file / signal -> every rank stops at the same step and saves;
* :class:`EvalChatCallback`    XTuner's EvaluateChatHook: answers to configured prompts before
                               training, every N steps, at each save and at the end -> samples.jsonl.
"""

from __future__ import annotations

import math
import threading
import time

from transformers import TrainerCallback

from tunesmith.core.chat.settings import GenerationSettings
from tunesmith.core.train.dist import DistContext, any_rank
from tunesmith.core.train.rundir import RunDir


def peak_memory_mb() -> tuple[float, str]:
    """Peak GPU memory of this process (MiB, 'gpu'), or its current RSS on CPU (MiB, 'rss')."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20, "gpu"
    import psutil

    return psutil.Process().memory_info().rss / 2**20, "rss"


class StopFlag:
    """Set by a signal handler or a watcher; read at step ends."""

    def __init__(self):
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str = "") -> None:
        self.reason = self.reason or reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class RunMetricsCallback(TrainerCallback):
    """One metrics.jsonl line per logging step (and one per evaluation), progress in status.json."""

    def __init__(self, rd: RunDir, ctx: DistContext, *, samples_per_step: int, sinks: list | None = None):
        self.rd = rd
        self.ctx = ctx
        self.samples_per_step = samples_per_step
        self.sinks = list(sinks or [])  # e.g. tunesmith.core.train.reporting.TensorBoardSink: get every metrics line too
        self.t0 = time.time()
        self.start_step = 0
        self.last = (time.time(), 0, 0)  # time, step, tokens at the previous line
        self.peak_rss = 0.0
        self.last_status = 0.0
        self.clock_pending = True

    def _mem(self) -> tuple[float, str]:
        value, kind = peak_memory_mb()
        if kind == "rss":
            self.peak_rss = max(self.peak_rss, value)
            value = self.peak_rss
        return round(value, 1), kind

    def on_train_begin(self, args, state, control, **kwargs):
        self._restart_clock(state)
        self.clock_pending = True
        for sink in self.sinks:
            sink.start(state.global_step)
        if self.ctx.is_main:
            self.rd.write_status(state="running", message="Training.", step=state.global_step,
                                 total_steps=state.max_steps, world_size=self.ctx.world_size)
            print(f"[tunesmith] training {state.max_steps} steps (from step {state.global_step}) "
                  f"on {self.ctx.world_size} process(es)", flush=True)

    def _restart_clock(self, state) -> None:
        self.t0 = time.time()
        self.start_step = state.global_step
        self.last = (self.t0, state.global_step, state.num_input_tokens_seen or 0)
        # A resumed run's elapsed_s goes on from its earlier attempts' (the curves must not restart at 0).
        earlier = [r.get("elapsed_s") for r in self.rd.read_metrics()
                   if r.get("step") is not None and r["step"] <= state.global_step] if state.global_step else []
        self.elapsed_offset = float(next((e for e in reversed(earlier) if isinstance(e, (int, float))), 0.0))

    def on_step_begin(self, args, state, control, **kwargs):
        if self.clock_pending:  # speed and ETA exclude start-up work such as the "before" samples
            self.clock_pending = False
            self._restart_clock(state)
            if self.ctx.is_main:
                self.rd.write_status(**phase_fields("training", state.global_step, state.max_steps))

    def on_step_end(self, args, state, control, **kwargs):
        if self.ctx.is_main and time.time() - self.last_status > 1.0:
            self.last_status = time.time()
            self.rd.write_status(step=state.global_step, total_steps=state.max_steps,
                                 **phase_fields("training", state.global_step, state.max_steps))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.ctx.is_main or not logs:
            return
        now = time.time()
        step = state.global_step
        mem, mem_kind = self._mem()
        base = {"step": step, "total_steps": state.max_steps, "epoch": _round(state.epoch),
                "peak_mem_mb": mem, "mem_kind": mem_kind,
                "elapsed_s": round(now - self.t0 + getattr(self, "elapsed_offset", 0.0), 3)}
        if "loss" in logs:
            t_prev, s_prev, tok_prev = self.last
            tokens = int(state.num_input_tokens_seen or 0)
            dt = max(now - t_prev, 1e-9)
            done = step - self.start_step
            eta = (now - self.t0) / done * (state.max_steps - step) if done > 0 else None
            record = {**base, "kind": "train", "loss": _round(logs.get("loss")), "eval_loss": None,
                      "learning_rate": logs.get("learning_rate"), "grad_norm": _round(logs.get("grad_norm")),
                      "tokens_per_s": round((tokens - tok_prev) / dt, 1), "tokens_seen": tokens,
                      "samples_per_s": round((step - s_prev) * self.samples_per_step / dt, 3),
                      "eta_s": round(eta, 1) if eta is not None else None}
            record.update({k: _round(v) for k, v in logs.items() if k.startswith(("rewards/", "logps/", "nll_loss",
                                                                                   "log_odds"))})
            self.last = (now, step, tokens)
            self.rd.append_jsonl(self.rd.metrics_path, record)
            self._to_sinks(record)
            print(_progress_line(record), flush=True)
        elif "eval_loss" in logs:
            record = {**base, "kind": "eval", "loss": None, "eval_loss": _round(logs["eval_loss"]),
                      "learning_rate": None, "grad_norm": None, "tokens_per_s": None,
                      "tokens_seen": int(state.num_input_tokens_seen or 0), "samples_per_s": None, "eta_s": None}
            self.rd.append_jsonl(self.rd.metrics_path, record)
            self._to_sinks(record)
            self.rd.write_status(eval_loss=record["eval_loss"])
            print(f"[tunesmith] step {step} eval_loss {record['eval_loss']:.4f}", flush=True)

    def _to_sinks(self, record: dict) -> None:
        for sink in self.sinks:
            sink.write(record)

    def on_train_end(self, args, state, control, **kwargs):
        for sink in self.sinks:
            sink.close()


class StopCallback(TrainerCallback):
    """Stop every rank at the same step on request, saving a checkpoint first; save at the last step too."""

    def __init__(self, rd: RunDir, ctx: DistContext, flag: StopFlag, *, stop_at_step: int = 0):
        self.rd = rd
        self.ctx = ctx
        self.flag = flag
        self.stop_at_step = stop_at_step  # fault injection: press Stop at this step
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop_at_step and state.global_step == self.stop_at_step and self.ctx.is_main:
            self.rd.request_stop()
        local = self.flag.is_set() or self.rd.stop_requested()
        if any_rank(local):  # collective: every rank calls it at every step, so all agree
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
            if self.ctx.is_main:
                self.rd.write_status(state="stopping", message=f"Stopping: saving checkpoint-{state.global_step}.",
                                     step=state.global_step)
                print(f"[tunesmith] stop requested: saving checkpoint-{state.global_step} and exiting", flush=True)
        elif state.max_steps and state.global_step >= state.max_steps:
            control.should_save = True  # always end with a checkpoint (it is the trained model)
        return control


class EvalChatCallback(TrainerCallback):
    """Generate answers to ``prompts`` and append them to samples.jsonl (XTuner EvaluateChatHook)."""

    def __init__(self, rd: RunDir, ctx: DistContext, tokenizer, *, template: str, prompts: list[str],
                 system: str = "", every_n_steps: int = 0, max_new_tokens: int = 128, zero3: bool = False,
                 seed: int = 0):
        self.rd = rd
        self.ctx = ctx
        self.tokenizer = tokenizer
        self.template = template
        self.prompts = [p for p in prompts if str(p).strip()]
        self.system = system
        self.every = every_n_steps
        self.max_new_tokens = max_new_tokens
        self.zero3 = zero3
        self.seed = seed
        self.done_steps: set[int] = set()

    def _encode(self, prompt: str) -> list[int]:
        """Prompt ids laid out exactly as in training (tunesmith.core.data.templates), special tokens included."""
        messages = ([{"role": "system", "content": self.system}] if self.system else [])
        messages.append({"role": "user", "content": prompt})
        from tunesmith.core.data.templates import encode_chat_prompt

        return encode_chat_prompt(self.template or "chat_template", self.tokenizer, messages)

    def _stop_words(self) -> list[str]:
        from tunesmith.core.data.templates import stop_words_for

        return [w for w in stop_words_for(self.template or "chat_template", self.tokenizer) if w]

    def generate(self, model, step: int, when: str, max_new_tokens: int | None = None,
                 total_steps: int = 0) -> list[dict]:
        import torch
        from transformers import StoppingCriteriaList

        from tunesmith.core.chat.stopping import earliest_stop, make_stopping_criteria

        if not self.prompts or step in self.done_steps:
            return []
        if not (self.ctx.is_main or self.zero3):
            return []  # under ZeRO-3 every rank must take part in generate; otherwise rank 0 alone
        self.done_steps.add(step)
        phase = "before" if when == "before" else "after" if total_steps and step >= total_steps else "samples"
        was_training = model.training
        model.eval()
        out = []
        stop_words = self._stop_words()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        try:
            # Sampling must not move the training RNG, or a resumed run would diverge from an uninterrupted one.
            devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(self.seed)
                # Prompts go in batches (left-padded): on a CPU one batched generate costs about what one
                # prompt does, and these answers were most of a small demo run's time.
                for first in range(0, len(self.prompts), EVAL_BATCH):
                    self._phase(phase, len(out), step)
                    chunk = self.prompts[first:first + EVAL_BATCH]
                    encoded = [self._encode(p) for p in chunk]
                    width = max(len(e) for e in encoded)
                    prompt_ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=model.device)
                    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=model.device)
                    ids = model.generate(input_ids=prompt_ids, attention_mask=mask,
                                         max_new_tokens=max_new_tokens or self.max_new_tokens,
                                         do_sample=True, temperature=SAMPLING.temperature, top_p=SAMPLING.top_p,
                                         top_k=SAMPLING.top_k, repetition_penalty=SAMPLING.repetition_penalty,
                                         use_cache=True, stopping_criteria=StoppingCriteriaList(
                                             [make_stopping_criteria(self.tokenizer, width, stop_words)]),
                                         pad_token_id=pad, synced_gpus=self.zero3)
                    for prompt, row in zip(chunk, ids):
                        answer = self.tokenizer.decode(row[width:], skip_special_tokens=True)
                        cut = earliest_stop(answer, stop_words)
                        answer = answer[:cut] if cut >= 0 else answer
                        out.append({"step": step, "when": when, "prompt": prompt, "answer": answer.strip()})
                self._phase(phase, len(out), step)
        finally:
            if was_training:
                model.train()
        if self.ctx.is_main:
            for record in out:
                self.rd.append_jsonl(self.rd.samples_path, record)
                print(f"[tunesmith] step {step} sample: {record['prompt']!r} -> {record['answer'][:200]!r}",
                      flush=True)
        return out

    def _phase(self, phase: str, done: int, step: int) -> None:
        if self.ctx.is_main:
            self.rd.write_status(**phase_fields(phase, done, len(self.prompts)), phase_step=step)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and state.global_step == 0:
            self.generate(model, 0, "before", max_new_tokens=min(50, self.max_new_tokens))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and self.every and state.global_step % self.every == 0 and not control.should_save:
            self.generate(model, state.global_step, "step", total_steps=state.max_steps)

    def on_save(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self.generate(model, state.global_step, "save", total_steps=state.max_steps)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self.generate(model, state.global_step, "end", total_steps=state.max_steps)


EVAL_BATCH = 4  # prompts per generate call
SAMPLING = GenerationSettings()  # the eval answers sample as the Chat tab does by default (temperature, top-k/p)


def phase_fields(key: str, done: int | None = None, total: int | None = None) -> dict:
    """status.json's phase fields: ``phase`` (loading_tokenizer, tokenizing, loading_model, before,
    training, saving, samples, after, evaluating), ``phase_done`` / ``phase_total`` when counted."""
    return {"phase": key or None, "phase_done": done, "phase_total": total, "phase_at": time.time()}


def _round(value, digits: int = 6):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else round(value, digits)


def _progress_line(r: dict) -> str:
    eta = f" eta {int(r['eta_s'])}s" if r.get("eta_s") is not None else ""
    grad = f" grad {r['grad_norm']:.3f}" if r.get("grad_norm") is not None else ""
    lr = f" lr {r['learning_rate']:.2e}" if r.get("learning_rate") is not None else ""
    return (f"[tunesmith] step {r['step']}/{r['total_steps']} loss {r['loss']:.4f}{lr}{grad} "
            f"{r['tokens_per_s']:.0f} tok/s mem {r['peak_mem_mb']:.0f}MB{eta}")
