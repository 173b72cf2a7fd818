"""Evaluate a tuned model and its base on the same held-out conversations.

For each model: the loss on the supervised tokens (the same masks training uses, from the data
pipeline's encoder) and greedy answers to each prompt, scored against the reference answer.
With an adapter and no ``against``, both sides come from one loaded model (PEFT's
``disable_adapter``), so the only difference between them is the adapter.

>>> from tunesmith.core.eval.runner import evaluate, EvalRequest          # doctest: +SKIP
>>> result = evaluate(EvalRequest("work_dirs/demo", data="tests/data/identity_test.json"))  # doctest: +SKIP
>>> result.summary["tuned"]["exact_match"], result.out_dir     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunesmith.core.errors import DataError, UserError
from tunesmith.core.refs import FILE, FOLDER, HUB, classify, is_embedded

HELD_OUT = "held-out"
# An optional column of accepted answers besides the row's own last answer (a text or a list), so
# exact match can accept every right phrasing, as multi-answer QA sets do. The map_fns never read it,
# so the row still trains and its loss is measured on its own answer.
REFERENCES = "references"


class EvalStopped(Exception):
    """A stop was requested (STOP file or SIGTERM) between two batches."""


@dataclass
class EvalRequest:
    """What to evaluate; JSON-safe, so the subprocess reads it back from request.json."""

    src: str                      # run dir / checkpoint / adapter folder / merged or full model folder
    data: str = ""                # test file (any format the Data tab reads); "" = the run's eval split
    map_fn: str = ""              # "" = the run's map_fn when the file fits it, else guessed
    template: str = ""            # "" = the run's (or recorded) template, else the model family's
    against: str = ""             # the model to compare with; "" = the run's base model
    limit: int = 0                # first N examples (0 = all)
    name: str = ""                # RUN_DIR/eval/<name>; "" = the data file's stem or "held-out"
    max_new_tokens: int = 128
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    lm_eval: bool = True          # also run the examples as an lm-evaluation-harness task when it is installed
    out_dir: str = ""             # explicit results folder (default RUN_DIR/eval/<name>)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EvalRequest":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def validated(self) -> "EvalRequest":
        for name in ("limit", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "limit" else 1):
                raise UserError(f"{name.replace('_', '-')} must be a whole number >= "
                                f"{0 if name == 'limit' else 1}, got {value!r}.",
                                f"Use e.g. --{name.replace('_', '-')} {dict(limit=50).get(name, 8)}.")
        if not self.src:
            raise UserError("nothing to evaluate was given.", "Give a run folder, checkpoint, adapter or model folder.")
        return self


@dataclass
class Example:
    index: int                    # row number in the test file (or in the run's eval split)
    messages: list                # the prompt as chat messages (system, earlier turns, the question)
    reference: str                # the row's last answer (the loss is measured on it)
    references: list = field(default_factory=list)  # every accepted answer, reference first
    prompt: str = ""              # the last question, for tables
    conversation: list = field(default_factory=list)  # the map_fn's turns, encoded for the loss
    scores: dict = field(default_factory=dict)   # "base"/"tuned" -> {answer, loss, tokens, metrics...}


@dataclass
class EvalResult:
    out_dir: Path
    summary: dict
    examples: list                # ordered rows, as in examples.jsonl


@dataclass
class Plan:
    request: EvalRequest
    tuned: object                 # tunesmith.core.chat.loading.ModelSpec
    base: object | None           # ModelSpec of a separately loaded base, None = the adapter switched off
    run_config: object | None
    out_dir: Path
    data_label: str
    base_label: str


# ---- planning (cheap: no weights loaded) --------------------------------------------------------

def results_root(src: str) -> Path:
    """RUN_DIR when SRC belongs to a run, else the SRC folder itself."""
    from tunesmith.core.export.source import resolve_checkpoint

    path = Path(src).expanduser()
    try:
        ckpt, run_dir = resolve_checkpoint(path)
    except UserError:
        return path.resolve()
    return Path(run_dir or ckpt).resolve()


def _checkpoint_info(src: str):
    from tunesmith.core.chat.loading import is_adapter_or_run
    from tunesmith.core.export.source import inspect_checkpoint

    path = Path(src).expanduser()
    if is_embedded(src) or not path.is_dir() or not is_adapter_or_run(path):
        return None
    return inspect_checkpoint(path)


def make_plan(req: EvalRequest) -> Plan:
    from tunesmith.core.chat.loading import resolve_spec

    req.validated()
    src_path = Path(req.src).expanduser()
    if not is_embedded(req.src) and not src_path.is_dir():
        raise UserError(f"{req.src} is not a folder.", "Give a run folder, a checkpoint-N folder, an exported adapter "
                        "or a merged model folder.")
    tuned = resolve_spec(req.src)
    info = _checkpoint_info(req.src)
    cfg = info.config if info is not None else None
    if req.against:
        base, base_label = resolve_spec(req.against), req.against
    elif tuned.adapter:
        base, base_label = None, (cfg.model.name_or_path if cfg is not None else tuned.base)
    else:
        recorded = (cfg.model.name_or_path if cfg is not None else "") or (info.base_model if info else "")
        if not recorded or Path(recorded).expanduser().resolve() == Path(tuned.base).resolve():
            raise UserError(f"cannot tell which base model {req.src} was tuned from.",
                            "Give it with --against BASE (a model folder, hub id or embedded:SmolLM2-135M-Instruct).")
        base, base_label = resolve_spec(recorded), recorded
    if not req.data:
        if cfg is None:
            raise UserError(f"{req.src} carries no training config, so there is no held-out split to use.",
                            "Give a test file with --data FILE.")
        if not cfg.data.eval_size:
            raise UserError(f"the run trained on all of {cfg.data.path} (data.eval_size is 0), so nothing was held out.",
                            "Give a test file with --data FILE (questions the model did not train on), or train "
                            "with data.eval_size=0.1 to keep a split aside.")
        data_label = f"{HELD_OUT} split of {cfg.data.path}"
    else:
        if classify(req.data) not in (FILE, FOLDER, HUB):
            raise DataError(f"test file {req.data} does not exist.", "Give an existing .json/.jsonl/.csv/.parquet file.")
        data_label = req.data
    name = req.name or (Path(req.data).stem if req.data else HELD_OUT)
    if not _safe_name(name):
        raise UserError(f"evaluation name '{name}' may only hold letters, digits, '.', '-' and '_'.",
                        "Use e.g. --name identity-test.")
    out_dir = Path(req.out_dir).expanduser().resolve() if req.out_dir else results_root(req.src) / "eval" / name
    req.name = name
    return Plan(req, tuned, base, cfg, out_dir, data_label, base_label)


def _safe_name(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name))


# ---- test examples through the data pipeline ----------------------------------------------------

def data_config(plan: Plan):
    """The DataConfig the test rows go through: the run's settings (system, max_length, template,
    columns) with the test file instead of the training file."""
    from tunesmith.core.config import DataConfig

    cfg = plan.run_config
    req = plan.request
    base = DataConfig() if cfg is None else DataConfig(**{k: getattr(cfg.data, k) for k in DataConfig.__dataclass_fields__})
    if req.data:
        base.path, base.eval_size, base.max_samples, base.split = req.data, 0.0, 0, "train"
        if req.map_fn:
            base.map_fn = req.map_fn
        elif cfg is None:
            base.map_fn = "auto"
    elif req.map_fn:
        base.map_fn = req.map_fn
    if req.template:
        base.template = req.template
    elif cfg is None:
        base.template = plan.tuned.template or "auto"
    return base


def test_rows(plan: Plan):
    """(rows, their row numbers in the file, DataConfig): the test file, or the eval split as training drew it."""
    from datasets import Dataset

    from tunesmith.core.data.loading import load_rows
    from tunesmith.core.data.pipeline import _split_eval

    dc = data_config(plan)
    ds = load_rows(dc.path, split=dc.split)
    if plan.request.data:
        return ds, list(range(ds.num_rows)), dc
    seed = plan.run_config.training.seed
    # The same calls and seed as tunesmith.core.data.pipeline.build_sft_data, made on a column of row numbers
    # (shuffles and splits depend only on the length and the seed), so these are exactly the rows
    # training never saw, and each keeps its row number in the file.
    rows = Dataset.from_dict({"row": list(range(ds.num_rows))})
    if dc.max_samples and dc.max_samples < rows.num_rows:
        rows = rows.shuffle(seed=seed).select(range(int(dc.max_samples)))
    _train, held = _split_eval(rows, dc.eval_size, seed)
    numbers = list(held["row"])
    return ds.select(numbers), numbers, dc


def build_examples(plan: Plan, tokenizer, model_path: str):
    """-> (examples, pipeline spec, dropped {reason: count}). Rows the pipeline drops are counted."""
    from tunesmith.core.data.encode import conversation_to_messages
    from tunesmith.core.data.map_fns import RowSkipped
    from tunesmith.core.data.pipeline import make_spec, row_conversation

    ds, numbers, dc = test_rows(plan)
    if ds.num_rows == 0:
        raise DataError(f"{dc.path} has no rows.", "Give a test file with at least one conversation.")
    try:
        spec = make_spec(dc, tokenizer, ds.column_names, ds[0], model_name_or_path=model_path, stage="sft")
    except DataError:
        if not plan.request.data or plan.request.map_fn or dc.map_fn == "auto":
            raise
        dc.map_fn, dc.columns = "auto", {}  # the test file is in another format than the training file
        spec = make_spec(dc, tokenizer, ds.column_names, ds[0], model_name_or_path=model_path, stage="sft")
    if spec.template == "":
        raise UserError("evaluation compares answers to questions, but this data has no prompt template "
                        "(pre-training text).", "Give instruction data (question/answer rows) with --data.")
    examples, dropped = [], {}
    limit = plan.request.limit or ds.num_rows
    for i in range(ds.num_rows):
        if len(examples) >= limit:
            break
        try:
            conversation, _ = row_conversation(ds[i], spec)
        except RowSkipped as exc:
            dropped[exc.reason] = dropped.get(exc.reason, 0) + 1
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = f"row could not be mapped ({type(exc).__name__})"
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        messages = [{"role": m["role"], "content": m["content"]} for m in conversation_to_messages(conversation)]
        reference = messages.pop()["content"]  # the last answer is what the model must produce
        try:
            accepted = accepted_references(reference, ds[i].get(REFERENCES))
        except DataError as exc:
            raise DataError(f"{dc.path}, row {numbers[i]}: {exc.message}", exc.fix) from None
        examples.append(Example(index=numbers[i], messages=messages, reference=reference, references=accepted,
                                prompt=messages[-1]["content"] if messages else "", conversation=conversation))
    if not examples:
        raise DataError(f"{dc.path}: no usable test example ({_reasons(dropped) or 'no rows'}).",
                        "Check the file with `python -m tunesmith check-dataset FILE` and choose its --map-fn.")
    return examples, spec, dropped


def accepted_references(reference: str, extra) -> list[str]:
    """The row's answer, then the texts of its ``references`` field (a text or a list), without repeats.

    >>> accepted_references("My name is Melody.", ["Melody", "My name is Melody."])
    ['My name is Melody.', 'Melody']
    >>> accepted_references("Paris", None)
    ['Paris']
    """
    if extra is None:
        extra = []
    elif isinstance(extra, str):
        extra = [extra]
    elif not isinstance(extra, (list, tuple)) or not all(isinstance(r, str) or r is None for r in extra):
        raise DataError(f"'{REFERENCES}' must be a text or a list of texts, got {type(extra).__name__}.",
                        f'Write e.g. "{REFERENCES}": ["Melody", "My name is Melody."].')
    out = []
    for text in [reference, *extra]:
        if text is not None and text.strip() and text not in out:
            out.append(text)
    return out or [reference]


def _reasons(dropped: dict) -> str:
    return ", ".join(f"{n} {r}" for r, n in dropped.items())


# ---- the model work -----------------------------------------------------------------------------

class Progress:
    """Counts work units; reports (fraction, message) and checks for a stop between batches."""

    def __init__(self, total: int, report=None, should_stop=None):
        self.total, self.done = max(1, total), 0
        self.report, self.should_stop = report, should_stop

    def step(self, units: int, message: str) -> None:
        self.done += units
        if self.report is not None:
            self.report(min(1.0, self.done / self.total), message)
        self.check()

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise EvalStopped()


def supervised_losses(model, encoded, *, pad_id: int, batch_size: int, progress: Progress, label: str):
    """Per example: (summed NLL over its supervised tokens, number of supervised tokens). No generation."""
    import torch
    import torch.nn.functional as F

    device = _device(model)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))  # less padding per batch
    out = [None] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encoded[i].input_ids) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(encoded[i].input_ids)
            ids[row, :n] = torch.tensor(encoded[i].input_ids)
            labels[row, :n] = torch.tensor(encoded[i].labels)
            mask[row, :n] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            shift = labels[:, 1:].to(device)  # token t is predicted from the tokens before it
            nll = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), shift.reshape(-1),
                                  ignore_index=-100, reduction="none").view(shift.shape)
        for row, i in enumerate(idx):
            keep = shift[row] != -100
            out[i] = (float(nll[row][keep].sum()), int(keep.sum()))
        progress.step(len(idx), f"{label}: loss {min(start + batch_size, len(order))}/{len(order)}")
    return out


def generate_answers(model, tokenizer, prompts: list[list[int]], *, eos: list[int], stop_words: list[str],
                     pad_id: int, max_new_tokens: int, batch_size: int, progress: Progress, label: str):
    """Greedy answers, batched with left padding (prompts end where the answer starts); -> [(text, tokens)]."""
    import copy

    import torch

    from tunesmith.core.chat.engine import ChatEngine

    device = _device(model)
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    gen = copy.deepcopy(hf.generation_config)
    gen.update(do_sample=False, temperature=None, top_k=None, top_p=None, num_beams=1, max_length=None,
               max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=pad_id)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(prompts[i])
            ids[row, width - n:] = torch.tensor(prompts[i])
            mask[row, width - n:] = 1
        with torch.inference_mode():
            seqs = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=gen)
        for row, i in enumerate(idx):
            new = seqs[row, width:].tolist()
            cut = next((k for k, t in enumerate(new) if t in eos), len(new))  # after EOS comes padding
            text = ChatEngine.cut_at_stop(tokenizer.decode(new[:cut], skip_special_tokens=True), stop_words)
            out[i] = (text.strip(), cut)
        progress.step(len(idx), f"{label}: answers {min(start + batch_size, len(order))}/{len(order)}")
    return out


def _device(model):
    try:
        return next(model.parameters()).device
    except StopIteration:
        return "cpu"


@dataclass
class Side:
    """One side of the comparison: a loaded model (or the tuned one with its adapter switched off)."""

    key: str                     # "base" or "tuned"
    label: str
    model: object
    tokenizer: object
    model_path: str
    adapter_off: bool = False

    @contextlib.contextmanager
    def active(self):
        if self.adapter_off:
            with self.model.disable_adapter():
                yield
        else:
            yield


def _pad_id(tokenizer, eos: list[int]) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else 0)


def run_side(side: Side, plan: Plan, examples: list[Example], template: str, progress: Progress, spec) -> dict:
    """Loss + answers of one model on every example; fills example.scores[side.key]; returns totals."""
    from tunesmith.core.chat.engine import ChatEngine
    from tunesmith.core.data.encode import make_encoder
    from tunesmith.core.data.templates import build_chat_prompt
    from tunesmith.core.eval.metrics import corpus_scores, score_answer

    tok = side.tokenizer
    encoder = spec.encoder if tok is spec.encoder.tokenizer else make_encoder(tok, template, spec.max_length)
    encoded = encoder.encode_batch([ex.conversation for ex in examples])
    engine = ChatEngine(side.model, tok, template=template, model_path=side.model_path)
    stop_words = engine.stop_words(template)
    eos = engine.eos_ids(stop_words)
    pad = _pad_id(tok, eos)
    prompts = [list(tok(build_chat_prompt(template, tok, ex.messages), add_special_tokens=False)["input_ids"])
               for ex in examples]
    req = plan.request
    with side.active():
        losses = supervised_losses(side.model, encoded, pad_id=pad, batch_size=req.batch_size, progress=progress,
                                   label=side.key)
        answers = generate_answers(side.model, tok, prompts, eos=eos, stop_words=stop_words, pad_id=pad,
                                   max_new_tokens=req.max_new_tokens, batch_size=req.batch_size, progress=progress,
                                   label=side.key)
        harness = run_harness(side, plan, examples, template, stop_words) if req.lm_eval else None
    nll = sum(s for s, _ in losses)
    count = sum(n for _, n in losses)
    for ex, (s, n), (text, new_tokens) in zip(examples, losses, answers):
        ex.scores[side.key] = {"answer": text, "loss": s / n if n else None, "answer_tokens": new_tokens,
                               **score_answer(text, ex.references or ex.reference)}
    loss = nll / count if count else None
    totals = {"label": side.label, "loss": loss, "perplexity": _ppl(loss), "supervised_tokens": count,
              "truncated": sum(1 for e in encoded if e.truncated),
              "answer_tokens": sum(t for _, t in answers) / len(answers),
              "hit_max_new_tokens": sum(1 for _, t in answers if t >= req.max_new_tokens),
              **corpus_scores([a for a, _ in answers], [ex.references or ex.reference for ex in examples])}
    totals.pop("n", None)
    if harness is not None:
        totals["lm_eval"] = harness
    return totals


def run_harness(side: Side, plan: Plan, examples: list[Example], template: str, stop_words: list[str]):
    """The harness's scores of this side on the same prompts, or None when lm-eval is not installed.
    Runs inside ``side.active()``, so the base side really has its adapter switched off."""
    from tunesmith.core.data.templates import build_chat_prompt
    from tunesmith.core.eval import harness

    if not harness.available():
        return None
    data = harness.write_task_data(plan.out_dir.parent / f".{plan.out_dir.name}.{harness.TASK_FILE}",
                                   [build_chat_prompt(template, side.tokenizer, ex.messages) for ex in examples],
                                   examples)
    config = harness.task_config(f"tunesmith_{side.key}", data, stop_words=stop_words,
                                 max_new_tokens=plan.request.max_new_tokens)
    try:
        return harness.run_task(side.model, side.tokenizer, config, batch_size=plan.request.batch_size)
    except Exception as exc:  # noqa: BLE001 - an optional cross-check must not lose our own results
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    finally:
        data.unlink(missing_ok=True)


def _ppl(loss):
    if loss is None:
        return None
    return math.exp(loss) if loss < 700 else float("inf")


def load_tokenizer(spec):
    """The tokenizer :func:`tunesmith.core.chat.loading.load_model` would load for ``spec``."""
    from transformers import AutoTokenizer

    from tunesmith.core.chat.loading import _has_tokenizer

    src = spec.adapter if spec.adapter and _has_tokenizer(spec.adapter) else (spec.tokenizer or spec.base)
    try:
        return AutoTokenizer.from_pretrained(src)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the tokenizer of {spec.label or spec.base}: {str(exc).splitlines()[0]}",
                        "Check the folder holds tokenizer files (hub ids must be in the local cache).") from None


def load_sides(plan: Plan) -> tuple[Side, Side]:
    from tunesmith.core.chat.loading import load_model

    req = plan.request
    tuned_model, tuned_tok, _ = load_model(plan.tuned, dtype=req.dtype, device=req.device)
    tuned = Side("tuned", plan.tuned.label or req.src, tuned_model, tuned_tok, plan.tuned.base)
    if plan.base is None:
        base = Side("base", plan.base_label, tuned_model, tuned_tok, plan.tuned.base, adapter_off=True)
    else:
        base_model, base_tok, _ = load_model(plan.base, dtype=req.dtype, device=req.device)
        base = Side("base", plan.base_label, base_model, base_tok, plan.base.base)
    return base, tuned


def evaluate(request: EvalRequest | str, data: str = "", *, progress=None, should_stop=None, **fields) -> EvalResult:
    """Evaluate SRC (and its base) on a test file or the run's held-out split; write and return the results.

    ``evaluate("work_dirs/demo", "test.json", limit=20)`` works as well as an :class:`EvalRequest`.
    ``progress(fraction, message)`` is called after every batch; ``should_stop()`` is checked between
    batches (raises :class:`EvalStopped`).
    """
    from tunesmith.core.data.templates import resolve_template
    from tunesmith.core.eval.report import build_summary, write_results

    req = request if isinstance(request, EvalRequest) else EvalRequest(str(request), data=data, **fields)
    started = time.time()
    plan = make_plan(req)
    report = progress or (lambda f, m: None)
    report(0.0, "reading the test data")
    # The data first, with the tokenizer alone: a test file in the wrong format fails in seconds,
    # not after the models are loaded.
    examples, spec, dropped = build_examples(plan, load_tokenizer(plan.tuned), plan.tuned.base)
    template = resolve_template(spec.template, plan.tuned.base, tokenizer=spec.encoder.tokenizer)
    report(0.0, "loading the models")
    base, tuned = load_sides(plan)
    Progress(1, should_stop=should_stop).check()
    tracker = Progress(4 * len(examples), report, should_stop)
    totals = {}
    for side in (base, tuned):
        totals[side.key] = run_side(side, plan, examples, template, tracker, spec)
    summary, rows = build_summary(plan, examples, totals, template=template, map_fn=spec.map_fn.name,
                                  dropped=dropped, seconds=time.time() - started)
    write_results(plan.out_dir, summary, rows)
    report(1.0, "done")
    return EvalResult(plan.out_dir, summary, rows)
