"""Benchmark: map + template + tokenise + pack on a generated alpaca-style file.

Runs Tunesmith's pipeline (``build_sft_data``: batched fast-tokenizer calls inside ``datasets.map``
with ``num_proc`` workers) and a straightforward per-sample reference (one ``tokenizer.encode`` per
segment, row by row, as XTuner's encode_fn does) on the same rows with the SmolLM2 tokenizer,
checks that both produce the same samples, and prints samples/s, tokens/s and the speed ratio.

It also measures the limit: the raw tokenizer backend (``backend_tokenizer.encode_batch_fast``) over the
templated texts of the same samples, i.e. tokenisation alone with nothing around it, and prints our ratio
to it (1.0 = the pipeline costs no more than tokenising). Compare ratios within one run, not absolute
numbers across runs: the machine may be busy.

    python bench/data_pipeline.py [--rows 20000] [--num-proc N|auto] [--template internlm2_chat] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ("the model learns from data while every sample keeps its context and the tokenizer turns words into ids "
         "quick brown fox jumps over lazy dog river mountain forest city music color light shadow question answer "
         "explain describe list compare summarise translate write code function value result because therefore").split()


def make_alpaca_file(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)

    def words(lo, hi):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    data = [{"instruction": words(5, 40).capitalize() + "?", "input": words(0, 30) if rng.random() < 0.4 else "",
             "output": words(10, 250).capitalize() + "."} for _ in range(rows)]
    path.write_text(json.dumps(data), encoding="utf-8")


def cpu_seconds() -> float:
    """CPU time of this process, its threads, and its finished child processes (num_proc workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def reference_pipeline(path: Path, tokenizer, template_name: str, max_length: int, seed: int = 42):
    """The plain way: row by row, one tokenizer call per segment, then greedy whole-sample packing."""
    from tunesmith.core.data.templates import SYSTEM_TEMPLATES, get_template

    tpl = get_template(template_name)
    del SYSTEM_TEMPLATES  # alpaca sets no system prompt (as XTuner's alpaca_map_fn)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id]
    samples = []
    for row in json.loads(path.read_text(encoding="utf-8")):
        user = f"{row['instruction']}\n{row['input']}"
        prompt = tpl.instruction.format(input=user, round=1)
        answer = row["output"] + tpl.suffix
        p_ids = tokenizer.encode(prompt, add_special_tokens=False)
        a_ids = tokenizer.encode(answer, add_special_tokens=False)
        end = [] if tpl.suffix_as_eos else eos
        sep = tokenizer.encode(tpl.sep, add_special_tokens=False) if tpl.sep else []
        ids = bos + p_ids + a_ids + end + sep
        labels = [-100] * (len(bos) + len(p_ids)) + a_ids + end + [-100] * len(sep)
        ids, labels = ids[:max_length], labels[:max_length]
        if any(x != -100 for x in labels):
            samples.append((ids, labels))
    random.Random(seed).shuffle(samples)
    packed, current = [], ([], [], [])
    for ids, labels in samples:
        if len(current[0]) + len(ids) > max_length:
            packed.append(current)
            current = ([], [], [])
        current[0].extend(ids)
        current[1].extend(labels)
        current[2].extend(range(len(ids)))
    if current[0]:
        packed.append(current)
    return samples, packed


def unpacked_samples(ds) -> list[tuple[tuple, tuple]]:
    """(input_ids, labels) of every sample inside the packed rows (a sample starts where position_ids is 0)."""
    import numpy as np

    out = []
    for row in ds.with_format("numpy"):
        ids, labels, pos = row["input_ids"], row["labels"], row["position_ids"]
        starts = np.flatnonzero(pos == 0).tolist() + [len(ids)]
        out += [(tuple(ids[a:b].tolist()), tuple(labels[a:b].tolist())) for a, b in zip(starts, starts[1:])]
    return out


def templated_texts(path: Path, tokenizer, template_name: str) -> list[str]:
    """Each sample as one string, the template applied (BOS/EOS as token text): what the backend tokenises."""
    from tunesmith.core.data.templates import get_template

    tpl = get_template(template_name)
    bos = tokenizer.bos_token or ""
    eos = "" if tpl.suffix_as_eos else (tokenizer.eos_token or "")
    return [bos + tpl.instruction.format(input=f"{row['instruction']}\n{row['input']}", round=1) + row["output"]
            + tpl.suffix + eos + tpl.sep for row in json.loads(path.read_text(encoding="utf-8"))]


def raw_backend_seconds(tokenizer, texts: list[str], batch: int = 1000) -> tuple[float, int]:
    """Wall seconds (and tokens) of ``backend_tokenizer.encode_batch_fast`` over ``texts``: the limit."""
    backend = tokenizer.backend_tokenizer
    t0 = time.perf_counter()
    tokens = 0
    for i in range(0, len(texts), batch):
        tokens += sum(len(e.ids) for e in backend.encode_batch_fast(texts[i:i + batch], add_special_tokens=False))
    return time.perf_counter() - t0, tokens


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--num-proc", default="default",
                        help="worker processes: a number, or 'default' (DataConfig's default, as a run gets it)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours and of the limit; medians are shown")
    parser.add_argument("--template", default="internlm2_chat")
    parser.add_argument("--max-length", type=int, default=2048)
    args = parser.parse_args(argv)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    import datasets
    from transformers import AutoTokenizer

    from tunesmith.core.config import DataConfig
    from tunesmith.core.data.pipeline import build_sft_data, effective_num_proc
    from tunesmith.core.gguf_import import ensure_embedded_tokenizer

    datasets.disable_progress_bars()
    datasets.disable_caching()  # measure the work, not the cache
    tokenizer = AutoTokenizer.from_pretrained(str(ensure_embedded_tokenizer()))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alpaca.json"
        make_alpaca_file(path, args.rows)
        extra = {} if args.num_proc == "default" else {"num_proc": int(args.num_proc)}
        cfg = DataConfig(path=str(path), map_fn="alpaca", template=args.template, max_length=args.max_length,
                         pack=True, **extra)
        texts = templated_texts(path, tokenizer, args.template)

        ours, limits = [], []
        for _ in range(max(1, args.repeat)):  # interleaved, so a busy moment hits both alike
            t0, c0 = time.perf_counter(), cpu_seconds()
            built = build_sft_data(cfg, tokenizer)
            ours.append((time.perf_counter() - t0, cpu_seconds() - c0))
            limits.append(raw_backend_seconds(tokenizer, texts))
        ours_s, ours_cpu = statistics.median(o[0] for o in ours), statistics.median(o[1] for o in ours)
        limit_s, limit_tokens = statistics.median(x[0] for x in limits), limits[0][1]
        t0, c0 = time.perf_counter(), cpu_seconds()
        ref_samples, ref_packed = reference_pipeline(path, tokenizer, args.template, args.max_length)
        ref_s, ref_cpu = time.perf_counter() - t0, cpu_seconds() - c0

        tokens = built.stats.total_tokens
        ref_tokens = sum(len(ids) for ids, _ in ref_samples)
        # every sample's ids and labels, not just the counts: the packed rows hold the reference's samples
        same = sorted(unpacked_samples(built.train)) == sorted((tuple(i), tuple(lb)) for i, lb in ref_samples)
        rows = args.rows
        print(f"rows: {rows}, template: {args.template}, max_length: {args.max_length}, num_proc: {cfg.num_proc} "
              f"({args.num_proc}; {effective_num_proc(cfg.num_proc, rows)} used), cpus: {os.cpu_count()}, "
              f"repeat: {args.repeat} (medians)")
        print(f"limit     : {rows / limit_s:9.0f} samples/s {limit_tokens / limit_s:11.0f} tokens/s "
              f"({limit_s:.2f} s wall; backend_tokenizer.encode_batch_fast over the templated texts)")
        print(f"tunesmith : {rows / ours_s:9.0f} samples/s {tokens / ours_s:11.0f} tokens/s "
              f"({ours_s:.2f} s wall, {ours_cpu:.1f} s CPU; {built.train.num_rows} packed rows, "
              f"{built.stats.packing_efficiency:.1%} full)")
        print(f"reference : {rows / ref_s:9.0f} samples/s {ref_tokens / ref_s:11.0f} tokens/s "
              f"({ref_s:.2f} s wall, {ref_cpu:.1f} s CPU; {len(ref_packed)} packed rows)")
        print(f"ratio     : {ref_s / ours_s:.2f}x the per-sample reference in wall time, {ref_cpu / ours_cpu:.2f}x in "
              f"CPU time (same samples, ids and labels: {same})")
        print(f"of limit  : {limit_s / ours_s:.2f} (ours vs the raw backend, wall time; 1.0 = no cost beyond "
              f"tokenising; same tokens: {limit_tokens == tokens})")
        print("note      : tokenisation itself is most of both; the wall-time gain grows with free cores "
              "(batched Rust tokenizer threads + num_proc workers)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
