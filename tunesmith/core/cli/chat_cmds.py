"""``python -m tunesmith chat MODEL``: XTuner's chat flags on the shared ChatEngine.

Interactive: type a message, end it with an empty line; EXIT quits, RESET forgets the conversation,
Ctrl-C stops the current answer. Piped input: each paragraph is one question; it exits at EOF.
"""

from __future__ import annotations

import sys

PROMPT = "double enter to end input (EXIT: exit chat, RESET: reset history) >>> "


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a model, an adapter or a training run",
                       description="Chat with MODEL: a model folder, hub id, embedded:SmolLM2-135M-Instruct, a "
                                   "merged folder, or a run/checkpoint folder (its base, adapter and template are "
                                   "used). End a message with an empty line; EXIT quits, RESET clears history.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--adapter", default=None, help="PEFT adapter folder (or a LoRA run / checkpoint) to load on top")
    p.add_argument("--prompt-template", default=None, metavar="NAME",
                   help="XTuner template name or chat_template (default: the run's, else from the model family)")
    system = p.add_mutually_exclusive_group()
    system.add_argument("--system", default=None, metavar="TEXT", help="system text")
    system.add_argument("--system-template", default=None, metavar="NAME",
                        help="XTuner system template: moss_sft, alpaca, arxiv_gentile, colorist, coder, lawyer, "
                             "medical, sql")
    p.add_argument("--bot-name", default="BOT", help="name put into {bot_name} of system templates")
    p.add_argument("--bits", type=int, choices=(4, 8), default=None, help="load the base in 4-bit (NF4) or 8-bit")
    p.add_argument("--torch-dtype", choices=("auto", "fp16", "bf16", "fp32"), default="auto",
                   help="weights dtype (auto: fp32 on CPU, bf16/fp16 on GPU)")
    p.add_argument("--max-new-tokens", type=int, default=2048, help="longest answer in tokens (default 2048)")
    p.add_argument("--temperature", type=float, default=0.1, help="0 = greedy (default 0.1)")
    p.add_argument("--top-k", type=int, default=40, help="default 40")
    p.add_argument("--top-p", type=float, default=0.75, help="default 0.75")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="default 1.0")
    p.add_argument("--stop-words", nargs="+", default=[], metavar="W", help="extra strings that end an answer")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--no-streamer", action="store_true", help="print each answer whole instead of streaming it")
    p.add_argument("--trust-remote-code", action="store_true", help="run Python code shipped with the model")
    p.set_defaults(func=cmd_chat)


def read_message(stream, interactive: bool) -> str | None:
    """Lines up to an empty line (or EOF), joined; None at EOF with nothing typed.

    >>> import io
    >>> s = io.StringIO("line 1\\nline 2\\n\\nnext\\n")
    >>> read_message(s, False), read_message(s, False), read_message(s, False)
    ('line 1\\nline 2', 'next', None)
    """
    lines: list[str] = []
    while True:
        line = stream.readline()
        if not line:
            return "\n".join(lines) if lines else None
        line = line.rstrip("\r\n")
        if not line.strip():
            if lines:
                return "\n".join(lines)
            continue  # blank lines between paragraphs
        lines.append(line)


def quiet_libraries() -> None:
    """Keep library chatter (load bars, deprecation notes, CPU-kernel hints) off the terminal."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    for message in (".*MatMul8bitLt.*", ".*is_gradient_checkpointing.*"):
        warnings.filterwarnings("ignore", message=message)


def cmd_chat(args) -> int:
    from tunesmith.core.chat import ChatEngine, GenerationSettings
    from tunesmith.core.chat.loading import system_text

    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                  top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                                  seed=args.seed, stop_words=list(args.stop_words)).validated()
    system = system_text(args.system, args.system_template, args.bot_name)
    quiet_libraries()
    engine = ChatEngine.load(args.model, adapter=args.adapter, template=args.prompt_template, system=system,
                             bits=args.bits, dtype=args.torch_dtype, settings=settings,
                             trust_remote_code=args.trust_remote_code)
    interactive = sys.stdin.isatty()
    adapter = " + adapter" if engine.has_adapter else ""
    print(f"loaded {engine.label}{adapter} (template {engine.template}, context {engine.context_limit} tokens)",
          file=sys.stderr)
    session = engine.new_session()
    while True:
        if interactive:
            print(PROMPT, end="", flush=True)
        text = read_message(sys.stdin, interactive)
        if text is None:
            return 0
        command = text.strip()
        if command == "EXIT":
            return 0
        if command == "RESET":
            session.reset()
            print("(history cleared)", file=sys.stderr)
            continue
        _answer(session, text, stream=not args.no_streamer)
        info = session.last
        if info.trimmed_turns:
            print(f"(dropped the {info.trimmed_turns} oldest exchange(s) to fit the context)", file=sys.stderr)


def _answer(session, text: str, *, stream: bool) -> None:
    if not stream:
        print(session.chat(text), flush=True)
        return
    deltas = session.stream(text)
    try:
        for delta in deltas:
            sys.stdout.write(delta)
            sys.stdout.flush()
    except KeyboardInterrupt:  # Ctrl-C stops this answer, not the chat
        session.cancel()
        deltas.close()
        sys.stdout.write(" [stopped]")
    sys.stdout.write("\n")
    sys.stdout.flush()
