"""The engine's own messages (status.json, errors, memory notes) in the GUI's language.

``core/`` writes plain English (the CLI and the logs read it as is); the GUI shows those texts in
the page's language. Each known message is a pattern whose groups become the parameters of a
locale message (``MESSAGES[lang]["engine_<key>"]``); an unknown message stays as written, so
nothing is ever hidden, only possibly left in English.

>>> translate("Finished 12 steps; the trained model is checkpoint-12.", "zh")
'已完成 12 步；训练好的模型是 checkpoint-12。'
>>> translate("Finished 12 steps; the trained model is checkpoint-12.", "en")
'Finished 12 steps; the trained model is checkpoint-12.'
>>> translate("something new", "zh")
'something new'
"""

from __future__ import annotations

import re

from tunesmith.app.locales import MESSAGES, text

# (key, pattern): the pattern must match the whole message; named groups are the parameters.
PATTERNS: list[tuple[str, str]] = [
    ("finished", r"Finished (?P<n>\d+) steps; the trained model is (?P<ckpt>\S+?)\."),
    ("stopped_at", r"Stopped at step (?P<n>\d+); resume from (?P<ckpt>.+?)\."),
    ("stop_requested", r"Stop requested: saving a checkpoint at the next step\."),
    ("stopping_saving", r"Stopping: saving (?P<ckpt>\S+?)\."),
    ("stopped_early", r"Stopped while (?P<phase>.+?); training had not started, so nothing was saved\."),
    ("killed", r"Killed on request\.(?P<note>.*)"),
    ("killed_second", r"Killed on a second stop request\.(?P<note>.*)"),
    ("starting_trainer", r"Starting the trainer\."),
    ("starting", r"Starting\."),
    ("training", r"Training\."),
    ("loading_tokenizer", r"Loading the tokenizer\."),
    ("preparing", r"Preparing the (?:dataset|preference pairs)\."),
    ("tokenizing", r"Tokenising (?P<n>\d+) rows\."),
    ("loading_model", r"Loading the model\."),
    ("resuming", r"Resuming from (?P<ckpt>\S+?)\."),
    ("evaluating", r"Evaluating on the held-out split\."),
    # the memory estimate's summary line and notes (core/memory/estimate.py, core/memory/parts.py)
    ("mem_setup", r"(?P<arch>.+?) \((?P<params>[^()]+) params\), (?P<method>full fine-tune|LoRA r=\d+|QLoRA \d+-bit "
                  r"r=\d+), (?P<precision>\w+), batch (?P<batch>\d+) x (?P<tokens>\d+) tokens(?P<pair> x 2 \(chosen\+"
                  r"rejected\))?, gradient checkpointing (?P<ckpt>on|off), (?P<gpus>\d+) GPUs?(?:, ZeRO-(?P<zero>\d))?"
                  r"(?P<offload> offload)?"),
    ("mem_no_pack", r"packing is off: the estimate assumes every sequence is padded to max_length \(worst case\)"),
    ("mem_bundled", r"model shape from Tunesmith's bundled copy of its config\.json fields \(not cached here\)"),
    ("mem_zero", r"ZeRO-(?P<stage>\d) splits the (?P<parts>[\w, ]+?) over (?P<n>\d+) GPUs?(?P<cpu> and offloads to CPU)?"),
    ("mem_dpo_ref", r"full-parameter DPO keeps a frozen reference copy of the model"),
    # Fit to my GPU's changes (core/memory/fit.py), each ending with the new estimate
    ("fit_step", r"(?P<what>.+): (?P<gb>[\d.]+) GB"),
    ("fit_precision", r"precision fp32 -> auto \(bf16/fp16 mixed precision\)"),
    ("fit_ckpt", r"gradient checkpointing on \(about 30% slower\)"),
    ("fit_zero", r"DeepSpeed (?P<old>\S+) -> (?P<new>\S+) \(split states over (?P<n>\d+) GPUs\)"),
    ("fit_full_lora", r"full fine-tune -> LoRA(?: \(learning rate (?P<old>\S+) -> (?P<new>\S+)\))?"),
    ("fit_qlora", r"LoRA -> QLoRA \((?P<bits>\d+)-bit (?P<kind>\w+) base weights\)"),
    ("fit_optimizer", r"optimizer (?P<old>\S+) -> paged_adamw_8bit"),
    ("fit_offload", r"gradient checkpoints offloaded to CPU memory"),
    ("fit_embeddings", r"input embeddings kept in CPU memory"),
    ("fit_rank", r"LoRA rank (?P<old>\d+) -> (?P<new>\d+) \(alpha (?P<a_old>\d+) -> (?P<a_new>\d+), same alpha/r\)"),
    ("fit_length", r"max_length (?P<old>\d+) -> (?P<new>\d+) tokens(?P<cut> \(longer samples are cut\))?"),
    ("fit_batch", r"batch size (?P<old>\d+) -> 1, gradient accumulation (?P<ga_old>\d+) -> (?P<ga_new>\d+) "
                  r"\(same effective batch (?P<eff>\d+)\)"),
    # why a row was dropped (tunesmith/core/data: RowSkipped reasons and the encoder's), in the stats table
    ("drop_empty_answer", r"empty answer"),
    ("drop_empty_text", r"empty text"),
    ("drop_no_conversation", r"no conversation after mapping"),
    ("drop_cut", r"no supervised token left after truncation to max_length"),
    ("drop_no_loss", r"no supervised token \(every answer has loss turned off\)"),
    ("drop_unmapped", r"row could not be mapped \((?P<kind>\w+)\)"),
    ("drop_nooutput", r"output is <nooutput>"),
    ("drop_user_last", r"conversation ends on a user turn \(no answer\)"),
    ("drop_role", r"unknown role '(?P<role>[^']*)' in '(?P<column>[^']*)'"),
    ("drop_not_messages", r"'(?P<column>[^']*)' is text, not a list of messages"),
    ("drop_no_key", r"a '(?P<role>[^']*)' message has no '(?P<key>[^']*)'"),
    ("drop_bool", r"(?P<field>.+?) is true/false, not text"),
    ("drop_nan", r"(?P<field>.+?) is (?P<value>\S+) \(not a number\), not text"),
    ("drop_kind", r"(?P<field>.+?) is (?P<kind>a list|an object|a \w+), not text"),
    ("drop_conversations_type", r"'conversations' is not a list of messages"),
    ("drop_pair_type", r"chosen/rejected is neither text nor messages"),
    ("drop_empty_conversation", r"empty 'conversation'"),
    ("drop_history", r"history entries must be \[question, answer\] pairs or turn objects"),
    ("drop_msagent_short", r"msagent conversation has fewer than two messages"),
    ("drop_msagent_json", r"msagent tool call is not valid JSON"),
    ("drop_no_assistant", r"no assistant message in 'conversations'"),
    ("drop_no_prompt", r"no prompt \(prompt, conversations or question column\)"),
    ("drop_no_turns", r"no turns in the mapped columns"),
    ("drop_wizardlm", r"wizardlm conversations must alternate human / gpt"),
    ("drop_no_pair", r"no chosen/rejected pair in the row"),
    ("drop_empty_prompt", r"empty prompt"),
    ("drop_prompt_answer", r"prompt ends with an answer"),
    ("drop_empty_pair", r"empty chosen or rejected answer"),
    ("drop_same_pair", r"chosen and rejected are identical"),
    # path checks (app/security.py resolve_user_path)
    ("not_exist", r"(?P<what>[\w ]+?) (?P<path>\S+) does not exist\."),
    ("fix_spelling", r"Check the spelling, or pick it from the list\."),
    ("none_given", r"no (?P<what>[\w ]+?) given\."),
    ("type_it", r"Type the (?P<what>[\w ]+?)\."),
    ("outside", r"(?P<path>.+?) is outside the folders this app may use \((?P<roots>.+)\)\."),
    ("fix_outside", r"Upload it with the upload box on the Data tab, or move or link it into one of them, or "
                    r"restart the app with --allow-dir FOLDER\."),
    ("gone", r"The training process is gone but never reported a result \(it was killed or the machine "
             r"restarted\)\. (?P<rest>.*)"),
]
_COMPILED = [(key, re.compile(pattern + r"\Z", re.S)) for key, pattern in PATTERNS]


def translate(message: str, lang: str) -> str:
    """``message`` in ``lang`` when it is a known engine message, else unchanged."""
    if not message or lang == "en" or lang not in MESSAGES:
        return message
    message = str(message).strip()
    for key, pattern in _COMPILED:
        found = pattern.match(message)
        if found and f"engine_{key}" in MESSAGES[lang]:
            params = {k: translate(v, lang) if k in ("rest", "what") else (v or "")
                      for k, v in found.groupdict().items()}
            return text(f"engine_{key}", lang, **_localised(key, params, lang))
    return message


def _localised(key: str, params: dict, lang: str) -> dict:
    """Parameters that are words themselves (on/off, the parts ZeRO splits) in ``lang``."""
    if key == "mem_setup":
        method = params["method"]
        params["method"] = text("engine_mem_full", lang) if method == "full fine-tune" else method
        params["ckpt"] = text("on" if params["ckpt"] == "on" else "off", lang)
        params["pair"] = text("engine_mem_pair", lang) if params["pair"] else ""
        params["zero"] = f", ZeRO-{params['zero']}" if params["zero"] else ""
        params["offload"] = text("zero_offload", lang) if params["offload"] else ""
    if "what" in params and key in ("not_exist", "none_given", "type_it"):
        thing = "what_" + params["what"].replace(" ", "_")
        params["what"] = text(thing, lang) if thing in MESSAGES.get(lang, {}) else params["what"]
    if key == "fit_full_lora":
        params["lr"] = text("engine_fit_lr", lang, old=params["old"], new=params["new"]) if params["old"] else ""
    if key == "fit_length":
        params["cut"] = text("engine_fit_cut", lang) if params["cut"] else ""
    if key == "mem_zero":
        params["parts"] = "、".join(text(f"mem_{p.strip()}", lang) for p in params["parts"].split(",")) \
            if lang == "zh" else params["parts"]
        params["cpu"] = text("engine_mem_cpu", lang) if params["cpu"] else ""
    return params
