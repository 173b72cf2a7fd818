"""Data verbs: check-dataset, list-templates, list-map-fns."""

from __future__ import annotations

import json
import os
import sys

DEFAULT_TOKENIZER = "embedded:SmolLM2-135M-Instruct"


def register(sub) -> None:
    p = sub.add_parser("check-dataset", help="show how a dataset becomes training samples (and find problems)",
                       description="Map, template and tokenise a dataset and show the first samples with the "
                                   "supervised spans marked, plus statistics. Exits 2 with a one-line message "
                                   "on a dataset that cannot be used.")
    p.add_argument("config", nargs="?", default="", metavar="CONFIG",
                   help="a run config (YAML file, run folder or preset name): check its dataset section (all its "
                        "sources) with its model's tokenizer, template and max_length, as XTuner's "
                        "check-custom-dataset does; the data flags below are then not used")
    p.add_argument("--data", default="", metavar="FILE",
                   help="a .json/.jsonl/.csv/.parquet/.txt file, a folder saved by `datasets`, or a hub id")
    p.add_argument("--map-fn", default="auto", metavar="NAME",
                   help="how rows become conversations (see list-map-fns); default: guess from the columns")
    p.add_argument("--columns", default="", metavar="ROLE=COL,...",
                   help="map columns by hand, e.g. input=question,output=answer "
                        "(roles: system, input, output, history; or text alone)")
    p.add_argument("--template", default="auto", metavar="NAME",
                   help="prompt template (see list-templates); default: from the model family")
    p.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, metavar="DIR",
                   help=f"tokenizer folder, hub id or {DEFAULT_TOKENIZER} (default)")
    p.add_argument("--model", default="", metavar="NAME", help="model name used to pick the template for 'auto' "
                   "(default: the tokenizer's)")
    p.add_argument("--max-length", type=int, default=2048, metavar="N", help="tokens per sample (default 2048)")
    p.add_argument("--system", default="", help="system prompt for conversations that have none")
    p.add_argument("--stage", default="sft", choices=("sft", "pretrain", "dpo", "orpo"),
                   help="sft (default), pretrain (no template), dpo/orpo (preference pairs)")
    p.add_argument("--split", default="train", help="split of a hub dataset or saved DatasetDict")
    p.add_argument("--show", type=int, default=3, metavar="N", help="samples to show (default 3)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON line per sample (input_ids, labels, text, ...) and nothing else on stdout")
    p.set_defaults(func=cmd_check_dataset)

    t = sub.add_parser("list-templates", help="list the prompt templates")
    t.add_argument("--json", action="store_true", help="print the templates as JSON")
    t.set_defaults(func=cmd_list_templates)

    m = sub.add_parser("list-map-fns", help="list the dataset formats (map functions)")
    m.add_argument("--json", action="store_true", help="print the map functions as JSON")
    m.set_defaults(func=cmd_list_map_fns)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()


def _check_tokenizer_path(name_or_path: str) -> None:
    from pathlib import Path

    from tunesmith.core.errors import UserError
    from tunesmith.core.refs import MISSING, classify, is_embedded

    if is_embedded(name_or_path):
        return
    path = Path(name_or_path).expanduser()
    if classify(name_or_path) == MISSING:
        raise UserError(f"tokenizer folder {name_or_path} does not exist.",
                        f"Give a model or tokenizer folder, a hub id, or {DEFAULT_TOKENIZER}.")
    if path.is_dir() and not any((path / f).exists() for f in
                                 ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")):
        raise UserError(f"{name_or_path} holds no tokenizer files (tokenizer.json / tokenizer_config.json).",
                        "Point at the folder of a Hugging Face model or tokenizer.")


def load_tokenizer(name_or_path: str):
    """AutoTokenizer for a folder, hub id or ``embedded:...``, with one-line errors."""
    from tunesmith.core.errors import UserError
    from tunesmith.core.refs import resolve_tokenizer_path

    _check_tokenizer_path(name_or_path)
    path = resolve_tokenizer_path(name_or_path)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # missing files, no internet for a hub id, ...
        raise UserError(f"could not load the tokenizer {name_or_path}: {str(exc).splitlines()[0][:200]}",
                        "Check the folder or hub id (hub ids need internet).") from None


def _from_run_config(args) -> None:
    """Take the dataset section, model and stage of the run config named by ``args.config``."""
    from dataclasses import replace

    from tunesmith.core.presets import load_config

    cfg = load_config(args.config)
    args.data_config = replace(cfg.data, pack=False)
    args.data, args.template, args.max_length = cfg.data.path, cfg.data.template, cfg.data.max_length
    args.tokenizer = args.model = cfg.model.name_or_path
    args.stage = cfg.method.stage


def _data_config(args):
    from tunesmith.core.config import DataConfig

    if getattr(args, "data_config", None) is not None:
        return args.data_config
    from tunesmith.core.data.map_fns import parse_columns_arg

    columns = parse_columns_arg(args.columns) if args.columns else {}
    map_fn = "columns" if columns else args.map_fn
    return DataConfig(path=args.data, map_fn=map_fn, columns=columns, template=args.template, system=args.system,
                      max_length=args.max_length, split=args.split, pack=False)


def _colour(enabled: bool):
    if not enabled:
        return "[[", "]]"
    return "\033[1;32m", "\033[0m"


def cmd_check_dataset(args) -> int:
    from tunesmith.core.data.loading import precheck
    from tunesmith.core.data.templates import resolve_template
    from tunesmith.core.errors import UserError

    if args.show < 0:
        raise UserError("--show must be 0 or more.", "Example: --show 3")
    if args.config:
        _from_run_config(args)
    elif not args.data:
        raise UserError("no dataset given.", "Give --data FILE, or a run config: check-dataset CONFIG.")
    from tunesmith.core.data.sources import data_sources, source_config

    # Cheap checks first (missing / empty / non-UTF-8 / invalid JSON files, names), then the data, and
    # the tokenizer (the slowest import) last, so a bad input fails within a second or two.
    data = _data_config(args)
    sources = data_sources(data)
    for source in sources:
        precheck(source.path)
    _check_tokenizer_path(args.tokenizer)
    model = args.model or args.tokenizer
    if args.template not in ("auto", ""):
        resolve_template(args.template, model)
    _quiet_libraries()
    if args.stage in ("dpo", "orpo"):
        return _check_preference(args, data, load_tokenizer(args.tokenizer), model)
    from tunesmith.core.data.loading import load_rows
    from tunesmith.core.data.pipeline import check_rows_map, resolve_map_fn
    from tunesmith.core.data.preview import preview

    rows = None
    for source in sources:
        one = source_config(data, source)
        loaded = load_rows(one.path, split=one.split)
        check_rows_map(loaded, resolve_map_fn(one, loaded.column_names, loaded[0], stage=args.stage), path=one.path)
        rows = loaded if rows is None else rows
    tokenizer = load_tokenizer(args.tokenizer)
    result = preview(data, tokenizer, model_name_or_path=model, stage=args.stage, n=args.show, rows=rows)
    for line in result.warnings():
        print(f"warning: {line}", file=sys.stderr)
    if args.json:
        for s in result.samples:
            print(json.dumps({"index": s.index, "input_ids": s.input_ids, "labels": s.labels, "text": s.text,
                              "conversation": s.conversation, "truncated": s.truncated}, ensure_ascii=False))
        return 0
    left, right = _colour(sys.stdout.isatty())
    print(f"data: {', '.join(s.path for s in sources)}   columns: {', '.join(result.columns)}")
    print(f"map_fn: {result.map_fn}   template: {result.template or '(none: pre-training)'}   "
          f"max_length: {args.max_length}")
    for s in result.samples:
        print(f"\n--- sample from row {s.index} ---")
        print("conversation:")
        for i, turn in enumerate(s.conversation, 1):
            for key in ("system", "input", "output"):
                if turn.get(key):
                    extra = " (no loss)" if key == "output" and turn.get("output_with_loss") is False else ""
                    print(f"  turn {i} {key}{extra}: {_short(turn[key])}")
        marks = "green" if left != "[[" else "[[...]]"
        print(f"templated text (supervised in {marks}){', truncated to max_length' if s.truncated else ''}:")
        print(s.marked(left, right))
        supervised = sum(1 for x in s.labels if x != -100)
        print(f"tokens: {len(s.input_ids)}, supervised: {supervised}")
    print("\n--- statistics ---")
    for line in result.stats.lines():
        print(line)
    return 0


def _short(text: str, limit: int = 300) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _check_preference(args, data, tokenizer, model) -> int:
    from tunesmith.core.data.preference import build_preference_data

    built = build_preference_data(data, tokenizer, model_name_or_path=model)
    rows = built.train.select(range(min(args.show, built.train.num_rows)))
    stats = built.stats
    for reason, count in stats.dropped.items():
        print(f"warning: {count} row(s) dropped: {reason} (first: row {stats.drop_examples.get(reason, '?')})",
              file=sys.stderr)
    if stats.truncated:
        print(f"warning: {stats.truncated} pair(s) have an answer cut to fit max_length {stats.max_length}",
              file=sys.stderr)
    for i, row in enumerate(rows):
        if args.json:
            print(json.dumps({"index": i, **row}, ensure_ascii=False))
        else:
            print(f"\n--- pair {i} ---")
            for key in ("prompt", "chosen", "rejected"):
                value = row[key] if isinstance(row[key], str) else json.dumps(row[key], ensure_ascii=False)
                print(f"{key}: {_short(value)}")
    if not args.json:
        print(f"\nrows: {stats.rows}   pairs kept: {stats.kept}   dropped: {stats.dropped_total}   "
              f"answers cut to max_length: {stats.truncated}   template: {built.template}")
    return 0


def cmd_list_templates(args) -> int:
    from tunesmith.core.data.templates import CHAT_TEMPLATE, PROMPT_TEMPLATES, describe_template

    if args.json:
        out = {name: {"system": t.system, "instruction": t.instruction, "suffix": t.suffix,
                      "suffix_as_eos": t.suffix_as_eos, "sep": t.sep, "stop_words": list(t.stop_words)}
               for name, t in PROMPT_TEMPLATES.items()}
        out[CHAT_TEMPLATE] = {"description": describe_template(CHAT_TEMPLATE)}
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    width = max(map(len, PROMPT_TEMPLATES)) + 2
    for name in list(PROMPT_TEMPLATES) + [CHAT_TEMPLATE]:
        print(f"{name:<{width}}{describe_template(name)}")
    return 0


def cmd_list_map_fns(args) -> int:
    from tunesmith.core.data.map_fns import MAP_FNS

    rows = [(m.name, ", ".join(m.required) + (f" [{', '.join(m.optional)}]" if m.optional else ""), m.summary)
            for m in MAP_FNS.values()]
    rows.append(("columns", "--columns ROLE=COL,...", "map your own columns: system, input, output, history"))
    if args.json:
        print(json.dumps([{"name": n, "columns": c, "summary": s} for n, c, s in rows], ensure_ascii=False, indent=1))
        return 0
    w1, w2 = max(len(r[0]) for r in rows) + 2, max(len(r[1]) for r in rows) + 2
    print(f"{'name':<{w1}}{'columns':<{w2}}what it does")
    for name, cols, summary in rows:
        print(f"{name:<{w1}}{cols:<{w2}}{summary}")
    return 0
