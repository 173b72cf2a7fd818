"""Export verbs: ``convert to-hf`` (alias ``pth_to_hf``) and ``convert merge``, as in XTuner, and ``convert gguf``."""

from __future__ import annotations

import argparse

DTYPE_CHOICES = ("fp16", "bf16", "fp32")


def register(sub) -> None:
    convert = sub.add_parser("convert", help="turn checkpoints into Hugging Face folders; merge adapters",
                             description="Convert training checkpoints (to-hf) or merge a LoRA adapter into its "
                                         "base model (merge).")
    verbs = convert.add_subparsers(dest="convert_command", metavar="{to-hf,merge,gguf}")

    to_hf = verbs.add_parser("to-hf", aliases=["pth_to_hf"], help="checkpoint -> clean adapter or model folder",
                             description="Write a clean Hugging Face folder from a run (its newest checkpoint) or "
                                         "a checkpoint folder: a PEFT adapter for LoRA/QLoRA runs, a full model for "
                                         "full fine-tunes. DeepSpeed ZeRO-2/3 shards are consolidated.")
    to_hf.add_argument("src", metavar="RUN_DIR_OR_CHECKPOINT")
    to_hf.add_argument("out_dir", metavar="OUT_DIR")
    _common(to_hf)
    to_hf.add_argument("--prompt-template", default=None, metavar="NAME",
                       help="record this template instead of the run's (data.template)")
    to_hf.set_defaults(func=cmd_to_hf)

    merge = verbs.add_parser("merge", help="merge a LoRA adapter into its base model",
                             description="Merge a LoRA/QLoRA adapter into the base weights and save one standalone "
                                         "model. QLoRA adapters merge into the de-quantised base.")
    merge.add_argument("base", metavar="BASE", help="base model folder, hub id or embedded:SmolLM2-135M-Instruct")
    merge.add_argument("adapter", metavar="ADAPTER", help="adapter folder, checkpoint folder or run folder")
    merge.add_argument("out_dir", metavar="OUT_DIR")
    _common(merge)
    merge.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                       help="where to merge (default cpu; cuda is faster but needs the whole model in GPU memory)")
    merge.set_defaults(func=cmd_merge)

    gguf = verbs.add_parser("gguf", help="run / checkpoint / adapter / merged folder -> GGUF + Ollama Modelfile",
                            description="Write OUT_DIR/NAME-QUANT.gguf with llama.cpp's own converter and quantiser "
                                        "(adapters are merged into their base first) and OUT_DIR/Modelfile with the "
                                        "run's chat template and stop words (ollama create NAME -f Modelfile).")
    gguf.add_argument("src", metavar="SRC", help="run folder, checkpoint, adapter folder or merged model folder")
    gguf.add_argument("out_dir", metavar="OUT_DIR")
    gguf.add_argument("--quant", default="q8_0", metavar="TYPE",
                      help="f16, bf16, f32, q8_0 (default), q6_k, q5_k_m, q4_k_m, q4_k_s, q3_k_m, q2_k, ...")
    gguf.add_argument("--prompt-template", default=None, metavar="NAME",
                      help="template to store instead of the run's (data.template)")
    gguf.add_argument("--name", default=None, help="model name in the file name (default: the run or folder name)")
    gguf.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists and is not empty")
    gguf.add_argument("--quiet", action="store_true", help="no progress bar")
    gguf.set_defaults(func=cmd_gguf)
    convert.set_defaults(func=lambda args: convert.print_help() or 2)


def _common(p) -> None:
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="fp16", help="dtype of the saved weights (default fp16)")
    p.add_argument("--fp32", dest="dtype", action="store_const", const="fp32", help="same as --dtype fp32 (XTuner)")
    p.add_argument("--max-shard-size", default="2GB", help="largest weight file, e.g. 2GB or 500MB (default 2GB)")
    p.add_argument("--no-safetensors", dest="safe", action="store_false",
                   help="write PyTorch .bin files instead of .safetensors")
    p.add_argument("--safe-serialization", dest="safe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists and is not empty")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run(description: str, quiet: bool, work) -> int:
    from tunesmith.core.cli.chat_cmds import quiet_libraries
    from tunesmith.core.export.progress import tqdm_progress

    quiet_libraries()  # our own bar shows the progress

    if quiet:
        out = work(None)
    else:
        callback, close = tqdm_progress(description)
        try:
            out = work(callback)
        finally:
            close()
    print(out)
    return 0


def cmd_to_hf(args) -> int:
    from tunesmith.core.export import convert_to_hf

    return _run("convert", args.quiet, lambda progress: convert_to_hf(
        args.src, args.out_dir, dtype=args.dtype, max_shard_size=args.max_shard_size, safe=args.safe,
        overwrite=args.overwrite, template=args.prompt_template, progress=progress))


def cmd_merge(args) -> int:
    from tunesmith.core.export import merge_adapter

    return _run("merge", args.quiet, lambda progress: merge_adapter(
        args.base, args.adapter, args.out_dir, dtype=args.dtype, max_shard_size=args.max_shard_size,
        device=args.device, safe=args.safe, overwrite=args.overwrite, progress=progress))


def cmd_gguf(args) -> int:
    from tunesmith.core.export.gguf import check_quant, convert_gguf

    check_quant(args.quant)  # a typo fails before the slow part
    return _run("gguf", args.quiet, lambda progress: convert_gguf(
        args.src, args.out_dir, quant=args.quant, template=args.prompt_template, overwrite=args.overwrite,
        name=args.name, progress=progress))
