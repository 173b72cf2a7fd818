"""Prompt templates: XTuner's 27 PROMPT_TEMPLATE entries, its SYSTEM_TEMPLATE texts, and the
tokenizer's own Jinja template (``chat_template``).

A template turns one conversation turn into text (XTuner's ``template_map_fn``):

- turn input  = SYSTEM.format(system=...) (when the turn has a system) + INSTRUCTION.format(input=..., round=i+1)
- turn output = output + SUFFIX            (the suffix is supervised, e.g. ``<|im_end|>``)
- an EOS token follows the output unless SUFFIX_AS_EOS; SEP follows every turn and is masked.

The same rules build the chat-time prompt (:func:`build_chat_prompt`), so a model is asked its
questions exactly as it was trained.

>>> get_template("internlm2_chat").instruction.format(input="Hi", round=1)
'<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tunesmith.core.errors import UserError, close_matches

CHAT_TEMPLATE = "chat_template"
AUTO = "auto"


@dataclass(frozen=True)
class PromptTemplate:
    """One XTuner prompt template (field names follow XTuner's upper-case keys)."""

    name: str
    system: str  # "{system}" placeholder; "" when the template has no system slot (minicpm)
    instruction: str  # "{input}" and optionally "{round}" placeholders
    suffix: str = ""  # appended to every answer and supervised
    suffix_as_eos: bool = False  # True: the suffix ends the turn, no tokenizer EOS/BOS between turns
    sep: str = ""  # masked text after each turn
    stop_words: tuple[str, ...] = ()  # generation stops here at chat time (never used in training)

    @property
    def need_eos_token(self) -> bool:
        return not self.suffix_as_eos


_LLAMA2_SYSTEM = (
    "[INST] <<SYS>>\n You are a helpful, respectful and honest assistant. Always answer as helpfully as "
    "possible, while being safe. Your answers should not include any harmful, unethical, racist, sexist, "
    "toxic, dangerous, or illegal content. Please ensure that your responses are socially unbiased and "
    "positive in nature.\n{system}\n<</SYS>>\n [/INST] "
)
_VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions. {system}\n "
)
_DEEPSEEK_CODER_SYSTEM = (
    "You are an AI programming assistant, utilizing the DeepSeek Coder model, developed by DeepSeekCompany, "
    "and you only answer questions related to computer science. For politically sensitive questions, "
    "security and privacy issues, and other non-computer science questions, you will refuse to answer. {system}\n"
)
_CHATML_SYSTEM = "<|im_start|>system\n{system}<|im_end|>\n"
_CHATML_INSTRUCTION = "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"
_DEEPSEEK_EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"  # <｜end▁of▁sentence｜>


def _t(name, system, instruction, suffix="", suffix_as_eos=False, sep="", stop_words=()):
    return PromptTemplate(name, system, instruction, suffix, suffix_as_eos, sep, tuple(stop_words))


# Exact strings of XTuner 0.2.0's xtuner/utils/templates.py (data, reproduced verbatim).
PROMPT_TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (
    _t("default", "<|System|>:{system}\n", "<|User|>:{input}\n<|Bot|>:", sep="\n"),
    _t("zephyr", "<|system|>\n{system}\n", "<|user|>\n{input}\n<|assistant|>\n", sep="\n"),
    _t("internlm_chat", "<|System|>:{system}\n", "<|User|>:{input}<eoh>\n<|Bot|>:",
       "<eoa>", True, "\n", ["<eoa>"]),
    _t("internlm2_chat", _CHATML_SYSTEM, _CHATML_INSTRUCTION, "<|im_end|>", True, "\n", ["<|im_end|>"]),
    _t("moss_sft", "{system}\n", "<|Human|>: {input}<eoh>\n", sep="\n", stop_words=["<eoc>", "<eom>"]),
    _t("llama2_chat", _LLAMA2_SYSTEM, "[INST] {input} [/INST]", sep="\n"),
    _t("code_llama_chat", "{system}\n", "[INST] {input} [/INST]"),
    _t("chatglm2", "{system}\n", "[Round {round}]\n\n问：{input}\n\n答：", sep="\n\n"),
    _t("chatglm3", "<|system|>\n{system}", "<|user|>\n{input}<|assistant|>\n", sep="\n"),
    _t("qwen_chat", _CHATML_SYSTEM, _CHATML_INSTRUCTION, "<|im_end|>", True, "\n",
       ["<|im_end|>", "<|endoftext|>"]),
    _t("baichuan_chat", "{system}\n", "<reserved_102>{input}<reserved_103>", sep="\n"),
    _t("baichuan2_chat", "{system}\n", "<reserved_106>{input}<reserved_107>", sep="\n"),
    _t("wizardlm", _VICUNA_SYSTEM, "USER: {input} ASSISTANT:", sep="\n"),
    _t("wizardcoder",
       "Below is an instruction that describes a task. Write a response that appropriately completes the "
       "request.\n\n{system}\n ",
       "### Instruction:\n{input}\n\n### Response:", sep="\n\n"),
    _t("vicuna", _VICUNA_SYSTEM, "USER: {input} ASSISTANT:", sep="\n"),
    _t("deepseek_coder", _DEEPSEEK_CODER_SYSTEM, "### Instruction:\n{input}\n### Response:\n", sep="\n"),
    _t("deepseekcoder", _DEEPSEEK_CODER_SYSTEM, "### Instruction:\n{input}\n### Response:\n", sep="\n"),
    _t("deepseek_moe", "[INST] {system} [/INST]\n", "[INST] {input} [/INST]", sep="\n"),
    _t("deepseek_v2", "{system}\n\n", "User: {input}\n\nAssistant: ", _DEEPSEEK_EOS, True, "", [_DEEPSEEK_EOS]),
    _t("mistral", "[INST] {system} [/INST]\n", "[INST] {input} [/INST]", sep="\n"),
    _t("mixtral", "[INST] {system} [/INST]\n", "[INST] {input} [/INST]", sep="\n"),
    _t("minicpm", "", "<用户> {input} <AI>", sep="\n"),
    _t("minicpm3", _CHATML_SYSTEM, _CHATML_INSTRUCTION, "<|im_end|>", True, "\n", ["<|im_end|>", "<|endoftext|>"]),
    _t("gemma", "<start_of_turn>system\n{system}<end_of_turn>\n",
       "<start_of_turn>user\n{input}<end_of_turn>\n<start_of_turn>model\n", "<end_of_turn>", False, "\n",
       ["<end_of_turn>"]),
    _t("cohere_chat", "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{system}<|END_OF_TURN_TOKEN|>",
       "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{input}<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
       "<|END_OF_TURN_TOKEN|>", True, "", ["<|END_OF_TURN_TOKEN|>"]),
    _t("llama3_chat", "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
       "<|start_header_id|>user<|end_header_id|>\n\n{input}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|eot_id|>", True, "", ["<|eot_id|>"]),
    _t("phi3_chat", "<|system|>\n{system}<|end|>\n", "<|user|>\n{input}<|end|>\n<|assistant|>\n",
       "<|end|>", True, "\n", ["<|end|>"]),
)}

# XTuner's SYSTEM_TEMPLATE texts (verbatim); map_fns use them as the turn's system.
SYSTEM_TEMPLATES: dict[str, str] = {
    "moss_sft": (
        "You are an AI assistant whose name is {bot_name}.\n"
        "Capabilities and tools that {bot_name} can possess.\n"
        "- Inner thoughts: enabled.\n"
        "- Web search: enabled. API: Search(query)\n"
        "- Calculator: enabled. API: Calculate(expression)\n"
        "- Equation solver: enabled. API: Solve(equation)\n"
        "- Text-to-image: disabled.\n"
        "- Image edition: disabled.\n"
        "- Text-to-speech: disabled.\n"
    ),
    "alpaca": ("Below is an instruction that describes a task. Write a response that appropriately completes the "
               "request.\n"),
    "arxiv_gentile": ("If you are an expert in writing papers, please generate a good paper title for this paper "
                      "based on other authors' descriptions of their abstracts.\n"),
    "colorist": ("You are a professional color designer. Please provide the corresponding colors based on the "
                 "description of Human.\n"),
    "coder": ("You are a professional programer. Please provide the corresponding code based on the description "
              "of Human.\n"),
    "lawyer": "你现在是一名专业的中国律师，请根据用户的问题给出准确、有理有据的回复。\n",
    "medical": "如果你是一名医生，请根据患者的描述回答医学问题。\n",
    "sql": ("If you are an expert in SQL, please generate a good SQL Query for Question based on the CREATE TABLE "
            "statement.\n"),
}

TEMPLATE_NAMES: tuple[str, ...] = tuple(PROMPT_TEMPLATES) + (CHAT_TEMPLATE,)

# Model family -> template. First match wins, so specific names come before general ones. Families
# XTuner has no template for use the tokenizer's own chat template.
FAMILY_TEMPLATES: tuple[tuple[str, str], ...] = (
    (r"deepseek-r1|r1-distill", CHAT_TEMPLATE),  # before qwen / llama: the distills use DeepSeek's chat format
    (r"internlm3", CHAT_TEMPLATE),
    (r"internlm2|internlm-?2", "internlm2_chat"),  # also internlm2.5 / internlm2_5
    (r"internlm", "internlm_chat"),
    (r"code-?llama", "code_llama_chat"),
    (r"llama-?3|llama3", "llama3_chat"),  # Llama 3 / 3.1 / 3.2 / 3.3
    (r"llama-?2|llama2", "llama2_chat"),
    (r"qwen3|qwq", CHAT_TEMPLATE),
    (r"qwen", "qwen_chat"),  # Qwen, Qwen1.5, Qwen2, Qwen2.5 (XTuner configs use qwen_chat)
    (r"chatglm3", "chatglm3"),
    (r"chatglm2", "chatglm2"),
    (r"glm-?4|chatglm", CHAT_TEMPLATE),
    (r"baichuan-?2|baichuan2", "baichuan2_chat"),
    (r"baichuan", "baichuan_chat"),
    (r"mixtral", "mixtral"),
    (r"mistral", "mistral"),
    (r"(^|[/_-])yi[-_.]\S*chat", CHAT_TEMPLATE),
    (r"(^|[/_-])yi([-_.]|$)", "default"),  # XTuner's Yi configs use the default template
    (r"gemma", "gemma"),
    (r"phi-?3", "phi3_chat"),
    (r"phi", CHAT_TEMPLATE),
    (r"deepseek-?v2|deepseek_v2", "deepseek_v2"),
    (r"deepseek-?moe", "deepseek_moe"),
    (r"deepseek-?coder", "deepseek_coder"),
    (r"deepseek", CHAT_TEMPLATE),
    (r"starcoder", "default"),  # XTuner's StarCoder configs use the default template
    (r"zephyr", "zephyr"),
    (r"minicpm-?3", "minicpm3"),
    (r"minicpm", "minicpm"),
    (r"cohere|command-?r|aya", "cohere_chat"),
    (r"wizardcoder", "wizardcoder"),
    (r"wizardlm", "wizardlm"),
    (r"vicuna", "vicuna"),
    (r"moss", "moss_sft"),
    (r"smollm", CHAT_TEMPLATE),
)

# config.json model_type -> a name the family table understands (for local folders with odd names).
_MODEL_TYPE_HINTS = {"internlm2": "internlm2", "internlm": "internlm", "qwen2": "qwen", "qwen": "qwen",
                     "qwen3": "qwen3", "chatglm": "chatglm", "baichuan": "baichuan", "mixtral": "mixtral",
                     "mistral": "mistral", "gemma": "gemma", "gemma2": "gemma", "phi3": "phi3", "cohere": "cohere",
                     "deepseek_v2": "deepseek_v2", "minicpm": "minicpm", "minicpm3": "minicpm3"}


def get_template(name: str) -> PromptTemplate:
    """The XTuner template called ``name``; a UserError with close matches otherwise.

    >>> get_template("qwen_chat").suffix
    '<|im_end|>'
    """
    try:
        return PROMPT_TEMPLATES[name]
    except KeyError:
        raise UserError(f"unknown prompt template '{name}'.",
                        close_matches(str(name), TEMPLATE_NAMES) + " See `python -m tunesmith list-templates`.",
                        field="data.template") from None


def _local_model_hints(path: str) -> tuple[str, bool | None]:
    """(model_type from config.json, whether the tokenizer has a chat template) for a local folder."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return "", None
    model_type = ""
    try:
        model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type", "") or ""
    except (OSError, ValueError, AttributeError):
        pass
    has_chat = (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file()
    if not has_chat:
        try:
            cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
            has_chat = bool(cfg.get("chat_template"))
        except (OSError, ValueError, AttributeError):
            pass
    return model_type, has_chat


def template_for_model(model_name_or_path: str) -> str:
    """The default template for a model, from its name (or its config.json model_type).

    Unknown families get ``chat_template`` when the (local) tokenizer has one, else ``default``.

    >>> template_for_model("internlm/internlm2_5-7b-chat")
    'internlm2_chat'
    >>> template_for_model("meta-llama/Meta-Llama-3-8B-Instruct")
    'llama3_chat'
    >>> template_for_model("embedded:SmolLM2-135M-Instruct")
    'chat_template'
    """
    known = family_template(model_name_or_path)
    if known:
        return known
    _, has_chat = _local_model_hints(model_name_or_path or "")
    return CHAT_TEMPLATE if has_chat else "default"


def family_template(model_name_or_path: str) -> str | None:
    """The family table's template for a model name (or a local folder's model_type); None if unknown.

    >>> family_template("google/gemma-2b-it"), family_template("acme/brand-new-model")
    ('gemma', None)
    """
    name = (model_name_or_path or "").strip().lower()
    for pattern, template in FAMILY_TEMPLATES:
        if re.search(pattern, name):
            return template
    model_type, _ = _local_model_hints(model_name_or_path or "")
    if model_type in _MODEL_TYPE_HINTS:
        return family_template(_MODEL_TYPE_HINTS[model_type])
    return None


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_template(name: str, model_name_or_path: str = "", *, tokenizer=None) -> str:
    """Turn ``auto`` into the family's template and check any other name.

    With a tokenizer, ``chat_template`` is only chosen automatically when the tokenizer has one, and
    it is chosen for model families the table does not know whenever the tokenizer has one.

    >>> resolve_template("auto", "Qwen/Qwen2-7B-Instruct")
    'qwen_chat'
    >>> resolve_template("llama3_chat", "anything")
    'llama3_chat'
    """
    if not name or name == AUTO:
        chosen = template_for_model(model_name_or_path)
        if tokenizer is not None:
            if chosen == CHAT_TEMPLATE and not has_chat_template(tokenizer):
                return "default"
            if family_template(model_name_or_path) is None and has_chat_template(tokenizer):
                return CHAT_TEMPLATE  # a family XTuner has no template for: the tokenizer's own
        return chosen
    if name == CHAT_TEMPLATE:
        if tokenizer is not None and not has_chat_template(tokenizer):
            raise UserError("the tokenizer has no chat template of its own.",
                            "Pick an XTuner template instead (see `python -m tunesmith list-templates`).",
                            field="data.template")
        return name
    get_template(name)
    return name


def stop_words_for(name: str, tokenizer=None) -> list[str]:
    """Strings that end a generated answer: the template's STOP_WORDS plus the tokenizer's EOS.

    >>> stop_words_for("qwen_chat")
    ['<|im_end|>', '<|endoftext|>']
    """
    words = [] if name in (CHAT_TEMPLATE, "", None) else list(get_template(name).stop_words)
    eos = getattr(tokenizer, "eos_token", None) if tokenizer is not None else None
    if eos and eos not in words:
        words.append(eos)
    return words


class _KeepMissing(dict):
    def __missing__(self, key):  # leave unknown placeholders (e.g. {bot_name}) as they are
        return "{" + key + "}"


def fill(text: str, **values) -> str:
    """``str.format`` that keeps unknown placeholders.

    >>> fill("[Round {round}] {input} {bot_name}", input="Hi", round=2)
    '[Round 2] Hi {bot_name}'
    """
    return text.format_map(_KeepMissing(values))


def bos_eos_ids(tokenizer) -> tuple[list[int], list[int]]:
    """XTuner's BOS/EOS rule: Qwen tokenizers get no BOS, ChatGLM gets its two prefix tokens.

    >>> class Qwen2Tokenizer: bos_token_id, eos_token_id = 7, 8
    >>> bos_eos_ids(Qwen2Tokenizer())
    ([], [8])
    """
    cls = type(tokenizer).__name__
    if cls in ("QWenTokenizer", "QWen2Tokenizer", "Qwen2Tokenizer", "Qwen2TokenizerFast"):
        bos = None
    elif cls == "ChatGLMTokenizer":
        bos = [64790, 64792]
    else:
        bos = tokenizer.bos_token_id
    eos = tokenizer.eos_token_id
    bos = [] if bos is None else ([bos] if isinstance(bos, int) else list(bos))
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    return bos, eos


def _token_text(tokenizer, ids: list[int]) -> str:
    return "".join(tokenizer.convert_ids_to_tokens(list(ids))) if ids else ""


def messages_to_turns(messages: list[dict]) -> tuple[list[dict], str, str]:
    """Chat messages -> (XTuner turns, pending system, pending user text).

    A system message attaches to the next turn, consecutive user messages are joined, as in
    XTuner's openai_map_fn. What follows the last answer is the question being asked.

    >>> messages_to_turns([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
    ...                    {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2"}])
    ([{'system': 'S', 'input': 'Q', 'output': 'A'}], '', 'Q2')
    """
    turns, system, pending = [], "", ""
    for msg in messages:
        role, content = msg.get("role"), msg.get("content") or ""
        if role == "system":
            system = content
        elif role == "user":
            pending += content
        elif role == "assistant":
            turns.append({"system": system, "input": pending, "output": content})
            system, pending = "", ""
        else:
            raise UserError(f"unknown chat role '{role}'.", "Use system, user or assistant.")
    return turns, system, pending


def build_chat_prompt(template_name: str, tokenizer, messages: list[dict], *,
                      add_generation_prompt: bool = True) -> str:
    """Text of a chat so far, ready for ``tokenizer(text, add_special_tokens=False)``.

    XTuner templates follow XTuner's chat semantics and reproduce the training layout exactly:
    BOS at the start (and after a turn that ended with EOS), SYSTEM before the turn it belongs to,
    INSTRUCTION.format(input=..., round=n), past answers + SUFFIX (+ EOS unless SUFFIX_AS_EOS) + SEP,
    and finally the new INSTRUCTION so the model writes the answer. ``chat_template`` uses the
    tokenizer's own Jinja template. Special tokens appear as their text, so tokenize the result
    with ``add_special_tokens=False`` (see :func:`encode_chat_prompt`).

    >>> class Tok:  # a tokenizer without BOS/EOS, enough for the layout
    ...     bos_token_id = eos_token_id = None
    >>> build_chat_prompt("internlm2_chat", Tok(), [{"role": "user", "content": "Hi"}])
    '<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    if template_name == CHAT_TEMPLATE:
        if not has_chat_template(tokenizer):
            raise UserError("the tokenizer has no chat template of its own.", "Choose an XTuner template.")
        return tokenizer.apply_chat_template(list(messages), tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    tpl = get_template(template_name)
    bos, eos = bos_eos_ids(tokenizer)
    bos_text, eos_text = _token_text(tokenizer, bos), _token_text(tokenizer, eos)
    turns, pending_system, pending = messages_to_turns(list(messages))
    if add_generation_prompt and (pending or pending_system or not turns):
        turns.append({"system": pending_system, "input": pending, "output": None})
    parts, need_bos = [], True
    for i, turn in enumerate(turns):
        if need_bos:
            parts.append(bos_text)
        if turn["system"] and tpl.system:
            parts.append(fill(tpl.system, system=turn["system"]))
        parts.append(fill(tpl.instruction, input=turn["input"], round=i + 1))
        if turn["output"] is None:  # the question being asked: the model writes from here
            break
        parts.append(turn["output"] + tpl.suffix)
        if tpl.need_eos_token:
            parts.append(eos_text)
        need_bos = tpl.need_eos_token
        parts.append(tpl.sep)
    return "".join(parts)


def encode_chat_prompt(template_name: str, tokenizer, messages: list[dict], *,
                       add_generation_prompt: bool = True) -> list[int]:
    """Token ids of :func:`build_chat_prompt` (special-token text is mapped to its ids once)."""
    text = build_chat_prompt(template_name, tokenizer, messages, add_generation_prompt=add_generation_prompt)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def describe_template(name: str) -> str:
    """One-line human description used by ``list-templates``."""
    if name == CHAT_TEMPLATE:
        return "the tokenizer's own Jinja chat template (apply_chat_template)"
    tpl = get_template(name)
    eos = "suffix ends the turn" if tpl.suffix_as_eos else "EOS after each answer"
    return f"{tpl.instruction!r} suffix={tpl.suffix!r} sep={tpl.sep!r} ({eos})"
