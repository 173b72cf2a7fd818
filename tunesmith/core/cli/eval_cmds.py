"""``evaluate``: base vs tuned on held-out data (loss, perplexity, generated answers and their scores)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="compare a tuned model with its base on a test file or the held-out split",
                       description="Evaluate SRC (a run folder, checkpoint, exported adapter or merged model) and "
                                   "its base model on the same conversations: loss and perplexity on the answers, "
                                   "greedy answers scored by exact match, ROUGE-L, BLEU and chrF, and whether each "
                                   "difference is larger than the noise. Results go to RUN_DIR/eval/NAME/. Runs as "
                                   "its own process with progress; Ctrl-C stops it, a second Ctrl-C kills it.")
    p.add_argument("src", metavar="SRC")
    p.add_argument("--data", default="", metavar="FILE",
                   help="test file in any format the Data tab reads (default: the run's held-out split, "
                        "data.eval_size, drawn with the run's seed)")
    p.add_argument("--map-fn", default="", help="row format of FILE (default: the run's when it fits, else guessed)")
    p.add_argument("--template", default="", help="prompt template (default: the run's)")
    p.add_argument("--against", default="", metavar="BASE", help="model to compare with (default: the run's base)")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="evaluate the first N examples only")
    p.add_argument("--name", default="", help="results folder name under RUN_DIR/eval/ (default: FILE's stem)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--torch-dtype", dest="dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    p.add_argument("--no-lm-eval", dest="lm_eval", action="store_false",
                   help="skip the lm-evaluation-harness cross-check (run by default when lm-eval is installed)")
    p.add_argument("--detach", action="store_true", help="start the evaluation and return at once")
    p.add_argument("--here", action="store_true", help="run in this process (no subprocess; for debugging)")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    p.set_defaults(func=cmd_evaluate)


def request_from_args(args):
    from tunesmith.core.eval.runner import EvalRequest

    return EvalRequest(src=args.src, data=args.data, map_fn=args.map_fn, template=args.template,
                       against=args.against, limit=args.limit, name=args.name, max_new_tokens=args.max_new_tokens,
                       batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                       lm_eval=args.lm_eval).validated()


def cmd_evaluate(args) -> int:
    import json
    import sys

    from tunesmith.core.eval.report import format_table, read_results

    req = request_from_args(args)
    if args.here:
        from tunesmith.core.eval.runner import evaluate

        result = evaluate(req, progress=lambda f, m: print(f"{f:.0%} {m}", file=sys.stderr, flush=True))
        print(json.dumps(result.summary, indent=1, default=str) if args.json else format_table(result.summary))
        return 0
    from tunesmith.core.eval.launch import start

    handle = start(req)
    print(f"results: {handle.run_dir}\nlog:     {handle.rd.log_path}", file=sys.stderr)
    if args.detach:
        print(f"started (pid {handle.pid}); watch with `python -m tunesmith status {handle.run_dir}`, "
              f"stop with `python -m tunesmith stop {handle.run_dir}`", file=sys.stderr)
        return 0
    from tunesmith.core.train.watch import follow

    status = follow(handle, out=sys.stderr)
    summary, _ = read_results(handle.run_dir)
    if status.get("state") != "finished" or summary is None:
        return 0 if status.get("state") == "stopped" else 1
    print(json.dumps(summary, indent=1, default=str) if args.json else format_table(summary))
    return 0
