"""``python -m tunesmith serve SRC``: an OpenAI-compatible API for a model, a run, a merged folder or a GGUF file."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API",
                       description="Serve SRC (a model folder, hub id, embedded:SmolLM2-135M-Instruct, a merged "
                                   "folder, a run/checkpoint/adapter folder, or a .gguf file) at /v1/models, "
                                   "/v1/chat/completions and /v1/completions. Loopback only unless an API key is "
                                   "set. Request fields left out use the defaults below.")
    p.add_argument("src", metavar="SRC")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other "
                                                         "needs --api-key)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="require 'Authorization: Bearer KEY' (default: $TUNESMITH_API_KEY, else no key)")
    p.add_argument("--model-name", default=None, metavar="NAME",
                   help="the id clients pass as model (default: the folder or file name)")
    p.add_argument("--prompt-template", default=None, metavar="NAME",
                   help="XTuner template name or chat_template (default: the run's, else the model family's)")
    p.add_argument("--system", default=None, metavar="TEXT", help="system text when a request has none")
    p.add_argument("--torch-dtype", choices=("auto", "fp16", "bf16", "fp32"), default="auto")
    p.add_argument("--max-new-tokens", type=int, default=512, help="default max_tokens (default 512)")
    p.add_argument("--temperature", type=float, default=0.1, help="default temperature (default 0.1; 0 = greedy)")
    p.add_argument("--top-k", type=int, default=40, help="default 40")
    p.add_argument("--top-p", type=float, default=0.75, help="default 0.75")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="default 1.0")
    p.add_argument("--seed", type=int, default=0, help="default seed (default 0)")
    p.add_argument("--trust-remote-code", action="store_true", help="run Python code shipped with the model")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from tunesmith.core.chat.settings import GenerationSettings
    from tunesmith.core.cli.chat_cmds import quiet_libraries
    from tunesmith.core.serve.backends import load_backend
    from tunesmith.core.serve.exposure import check_serve_exposure, resolve_api_key
    from tunesmith.core.serve.server import serve

    api_key = resolve_api_key(args.api_key)
    check_serve_exposure(args.host, api_key)  # before the slow model load
    quiet_libraries()
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                  top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                                  seed=args.seed).validated()
    print(f"tunesmith serve: loading {args.src}", file=sys.stderr, flush=True)
    backend = load_backend(args.src, model_id=args.model_name, template=args.prompt_template, system=args.system,
                           settings=settings, dtype=args.torch_dtype, trust_remote_code=args.trust_remote_code)
    serve(backend, host=args.host, port=args.port, api_key=api_key, log_level=args.log_level,
          announce=lambda line: print(f"{line} (model '{backend.model_id}', {backend.kind})", flush=True))
    return 0
