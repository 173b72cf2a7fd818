"""Preset verbs: list-cfg, copy-cfg (as XTuner), estimate (GPU memory), model-info (config.json facts)."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("list-cfg", help="list the built-in run presets",
                       description="List presets named {model}_{qlora|lora|full}_{dataset}_e{epochs}, as XTuner's "
                                   "list-cfg.")
    p.add_argument("-p", "--pattern", default="", help="only names containing PATTERN (case-insensitive; "
                                                         "shell wildcards allowed)")
    p.set_defaults(func=cmd_list_cfg)

    p = sub.add_parser("copy-cfg", help="copy a preset to DIR/NAME_copy.yaml to edit it",
                       description="Copy a preset into DIR as NAME_copy.yaml (never overwrites).")
    p.add_argument("name", metavar="NAME")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(func=cmd_copy_cfg)

    p = sub.add_parser("estimate", help="estimate the peak GPU memory of a run config",
                       description="Estimate the peak memory of one GPU for CONFIG (a preset name or a YAML path) "
                                   "from the model's config.json alone, with a breakdown.")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("--gpu-gb", type=float, default=None,
                   help="GPU memory to compare against, in GB (default: the detected GPU, else 8)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field first, e.g. --set training.batch_size=4 (repeatable)")
    p.add_argument("--fit", action="store_true", help="also show the changes that make the run fit the GPU")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("model-info", help="show a model's size and shape from its config.json",
                       description="Facts about a model from config.json only (no weights are loaded): a local "
                                   "folder, embedded:SmolLM2-135M-Instruct, or a hub id in the local cache.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_model_info)


def cmd_list_cfg(args) -> int:
    from tunesmith.core.errors import UserError
    from tunesmith.core.presets import list_presets

    names = list_presets(args.pattern)
    if not names:
        raise UserError(f"no preset matches '{args.pattern}'.", "Run `python -m tunesmith list-cfg` to see them all.")
    print("\n".join(names))
    return 0


def cmd_copy_cfg(args) -> int:
    from tunesmith.core.presets import copy_preset

    print(copy_preset(args.name, args.dir))
    return 0


def cmd_estimate(args) -> int:
    from tunesmith.core.memory import detect_gpu_gb, estimate_memory, fit_to_gpu
    from tunesmith.core.memory.fit import CannotFit
    from tunesmith.core.presets import load_config

    cfg = load_config(args.config)
    if args.overrides:
        cfg = cfg.with_overrides(args.overrides)
    detected = detect_gpu_gb()
    gpu_gb = args.gpu_gb if args.gpu_gb is not None else (detected or 8.0)
    if gpu_gb <= 0:
        from tunesmith.core.errors import UserError

        raise UserError(f"--gpu-gb must be positive, got {gpu_gb:g}.", "Example: --gpu-gb 24")
    estimate = estimate_memory(cfg, gpu_gb=gpu_gb)
    fitted = None
    if args.fit and not estimate.fits():
        try:
            new_cfg, changes = fit_to_gpu(cfg, gpu_gb)
            fitted = {"changes": changes, "fits": True, "config": new_cfg.to_dict()}
        except CannotFit as exc:
            fitted = {"changes": exc.changes, "fits": False, "error": str(exc)}
    if args.json:
        out = estimate.to_dict()
        out["gpu_source"] = "--gpu-gb" if args.gpu_gb is not None else ("detected" if detected else "default")
        if fitted is not None:
            out["fit"] = fitted
        print(json.dumps(out, ensure_ascii=False))
        return 0
    source = "" if args.gpu_gb is not None else (" (detected)" if detected else " (default; pass --gpu-gb)")
    print(estimate.summary())
    if source:
        print(f"  GPU size {gpu_gb:g} GB{source}")
    if fitted is not None:
        print("\nTo fit:" if fitted["fits"] else "\nCannot fit:")
        for change in fitted["changes"]:
            print(f"  - {change}")
        if not fitted["fits"]:
            print(f"  {fitted['error']}")
    return 0


def cmd_model_info(args) -> int:
    from tunesmith.core.model import format_facts, model_facts

    facts = model_facts(args.model)
    print(json.dumps(facts, ensure_ascii=False) if args.json else format_facts(facts))
    return 0
