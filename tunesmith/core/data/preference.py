"""Preference pairs for DPO / ORPO: rows -> ``prompt`` / ``chosen`` / ``rejected`` for TRL's trainers.

Accepted layouts (the first that fits a row's columns wins):

- ``prompt`` + ``chosen`` + ``rejected``: each a string, a message, or a message list (a chosen list
  that repeats the prompt contributes only its last answer);
- ``chosen`` + ``rejected`` message lists without a prompt: the prompt is ``chosen[:-1]``;
- LLaMA-Factory: ``conversations`` [{from, value}] + ``chosen``/``rejected`` {from, value} (+ ``system``);
- Intel Orca DPO: ``system``, ``question``, ``chosen``, ``rejected``;
- Alpaca-style ranking: ``instruction`` (+ ``input``, ``history``) and ``output`` = [better, worse].

With an XTuner template the prompt is rendered as text exactly as in SFT (see
``templates.build_chat_prompt``) and ``chosen``/``rejected`` are the answers + SUFFIX (TRL appends the
tokenizer's EOS when the text does not already end with it, as XTuner's encoding does for templates
without SUFFIX_AS_EOS). In ``chat_template`` mode the rows are TRL's conversational format (message
lists) and TRL applies the chat template itself.

Lengths are checked here, as TRL will cut them: the prompt is kept whole and the answers are cut to
what is left of ``max_length``. A pair whose prompt alone fills ``max_length`` has no answer token to
learn from (ORPO then trains on NaN and logs a loss of 0.0; DPO drops it silently), so it is dropped
with that reason and counted. Only the head of a very long text is tokenised (as in SFT, see
``encode.char_budget``), and an answer far longer than max_length is cut before TRL sees it.
"""

from __future__ import annotations

from tunesmith.core.data.encode import CUT_MARGIN, char_budget, cut_text
from tunesmith.core.data.map_fns.base import RowSkipped, as_list, text
from tunesmith.core.data.pipeline import BuiltData, _split_eval
from tunesmith.core.data.stats import DatasetStats
from tunesmith.core.data.templates import (CHAT_TEMPLATE, bos_eos_ids, build_chat_prompt, get_template, resolve_template)
from tunesmith.core.data.token_ids import batch_token_ids
from tunesmith.core.errors import DataError


def _answer(value) -> str:
    """The answer text of a chosen/rejected cell: a string, a message, or a message list (its last answer)."""
    if not isinstance(value, (list, tuple, dict)):
        return text(value)  # also numbers: datasets' Json columns decode "4" to 4
    if isinstance(value, dict):
        return text(value.get("content", value.get("value")))
    items = as_list(value)
    if items and isinstance(items[-1], dict):
        return text(items[-1].get("content", items[-1].get("value")))
    raise RowSkipped("chosen/rejected is neither text nor messages")


_ROLE_NAMES = {"human": "user", "gpt": "assistant", "observation": "user", "function_call": "assistant"}


def _messages(value) -> list[dict]:
    """A prompt cell as chat messages (role/content), from text, OpenAI or ShareGPT messages."""
    if not isinstance(value, (list, tuple, dict)):
        return [{"role": "user", "content": text(value)}]
    items = [m for m in as_list(value) if isinstance(m, dict)]
    out = []
    for m in items:
        role = text(m.get("role", m.get("from"))).lower()
        role = _ROLE_NAMES.get(role, role)
        out.append({"role": role, "content": text(m.get("content", m.get("value")))})
    return out


def to_pair(row: dict) -> tuple[list[dict], str, str]:
    """One row -> (prompt messages, chosen answer, rejected answer).

    >>> to_pair({"prompt": "2+2?", "chosen": "4", "rejected": "5"})
    ([{'role': 'user', 'content': '2+2?'}], '4', '5')
    >>> to_pair({"conversations": [{"from": "human", "value": "Hi"}], "chosen": {"from": "gpt", "value": "Hello"},
    ...          "rejected": {"from": "gpt", "value": "Go away"}})
    ([{'role': 'user', 'content': 'Hi'}], 'Hello', 'Go away')
    """
    if "chosen" not in row or "rejected" not in row:
        if isinstance(row.get("output"), (list, tuple)) and len(row["output"]) >= 2 and "instruction" in row:
            prompt = "\n".join(p for p in (text(row.get("instruction")), text(row.get("input"))) if p)
            history = []
            for pair in as_list(row.get("history")):
                if isinstance(pair, (list, tuple)) and len(pair) == 2:
                    history += [{"role": "user", "content": text(pair[0])},
                                {"role": "assistant", "content": text(pair[1])}]
            return history + [{"role": "user", "content": prompt}], text(row["output"][0]), text(row["output"][1])
        raise RowSkipped("no chosen/rejected pair in the row")
    chosen, rejected = row["chosen"], row["rejected"]
    if "prompt" in row and row["prompt"] not in (None, "", []):
        prompt = _messages(row["prompt"])
    elif "conversations" in row and row["conversations"]:
        prompt = _messages(row["conversations"])
    elif "question" in row and row["question"]:
        prompt = [{"role": "user", "content": text(row["question"])}]
    elif isinstance(chosen, (list, tuple)) and len(chosen) > 1:
        prompt = _messages(list(chosen)[:-1])
    else:
        raise RowSkipped("no prompt (prompt, conversations or question column)")
    system = text(row.get("system"))
    if system and not any(m["role"] == "system" for m in prompt):
        prompt = [{"role": "system", "content": system}] + prompt
    return prompt, _answer(chosen), _answer(rejected)


def _check_pair(prompt: list[dict], chosen: str, rejected: str) -> None:
    if not any(m["role"] == "user" and m["content"].strip() for m in prompt):
        raise RowSkipped("empty prompt")
    if prompt[-1]["role"] == "assistant":
        raise RowSkipped("prompt ends with an answer")
    if not chosen.strip() or not rejected.strip():
        raise RowSkipped("empty chosen or rejected answer")
    if chosen == rejected:
        raise RowSkipped("chosen and rejected are identical")


def _bos_text_needed(tokenizer) -> bool:
    """Whether the prompt text must carry BOS itself (TRL tokenises it with the tokenizer's own rules)."""
    bos, _ = bos_eos_ids(tokenizer)
    if not bos:
        return False
    auto = tokenizer("a")["input_ids"]
    return list(auto[:len(bos)]) != list(bos)


def prompt_fills_reason(max_length: int) -> str:
    return f"the prompt fills max_length ({max_length} tokens): no answer token is left to learn from"


def _fit(tokenizer, texts: list[str], room: list[int]) -> list[tuple[str, int]]:
    """Each text, cut when it is far longer than ``room`` tokens, with its token count (of the cut text,
    which is then at least room + CUT_MARGIN): bounded work whatever a row holds."""
    budgets = [char_budget(max(r, 1)) for r in room]
    out: list[tuple[str, int] | None] = [None] * len(texts)
    todo = list(range(len(texts)))
    while todo:
        heads = {i: cut_text(texts[i], budgets[i]) for i in todo}
        counts = batch_token_ids(tokenizer, list(heads.values())) if heads else []
        retry = []
        for (i, head), ids in zip(heads.items(), counts):
            if len(head) < len(texts[i]) and len(ids) < room[i] + CUT_MARGIN:
                budgets[i] *= 4  # the text packs tighter than char_budget assumes
                retry.append(i)
            else:
                out[i] = (head, len(ids))
        todo = retry
    return out


def _prompt_text(prompt, template: str, tokenizer) -> str:
    if template == CHAT_TEMPLATE:
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return prompt


def _check_lengths(out: dict, template: str, tokenizer, max_length: int) -> None:
    """Drop pairs whose prompt fills max_length, cut answers far past it, mark the truncated ones."""
    live = [j for j, reason in enumerate(out["drop_reason"]) if not reason]
    if not live or not max_length:
        return
    bos = tokenizer.bos_token if tokenizer.bos_token_id is not None else None
    prompts = [_prompt_text(out["prompt"][j], template, tokenizer) for j in live]
    fitted = _fit(tokenizer, prompts, [max_length] * len(live))
    answers, owners = [], []
    for j, prompt, (_, n_prompt) in zip(live, prompts, fitted):
        if bos and not prompt.startswith(bos):
            n_prompt += 1  # TRL puts BOS in front of a prompt that lacks it
        if n_prompt >= max_length:
            out["drop_reason"][j] = prompt_fills_reason(max_length)
            continue
        for key in ("chosen", "rejected"):
            value = out[key][j]
            answers.append(value[0]["content"] if isinstance(value, list) else value)
            owners.append((j, key, max_length - n_prompt))
    if not answers:
        return
    for (j, key, room), text_in, (head, n) in zip(owners, answers,
                                                  _fit(tokenizer, answers, [r for _, _, r in owners])):
        if n + 1 > room:  # + the EOS TRL appends
            out["truncated"][j] = True
        if key == "chosen":
            out["supervised"][j] = min(n + 1, room)
            out["length"][j] = max_length - room + out["supervised"][j]
        if head is not text_in and len(head) < len(text_in):
            value = out[key][j]
            out[key][j] = [{**value[0], "content": head}] if isinstance(value, list) else head


def pairs_batch(batch: dict, indices: list[int] | None = None, *, template: str, tokenizer, system: str,
                bos_text: bool, max_length: int = 0) -> dict:
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    out = {"prompt": [], "chosen": [], "rejected": [], "drop_reason": [],
           "row": list(indices) if indices is not None else list(range(n))}
    suffix = "" if template == CHAT_TEMPLATE else get_template(template).suffix
    bos_ids, _ = bos_eos_ids(tokenizer)
    bos_str = "".join(tokenizer.convert_ids_to_tokens(bos_ids)) if bos_ids else ""
    for j in range(n):
        row = {k: batch[k][j] for k in keys}
        try:
            prompt, chosen, rejected = to_pair(row)
            if system and not any(m["role"] == "system" for m in prompt):
                prompt = [{"role": "system", "content": system}] + prompt
            _check_pair(prompt, chosen, rejected)
            reason = ""
        except RowSkipped as exc:
            prompt, chosen, rejected, reason = [], "", "", exc.reason
        if template == CHAT_TEMPLATE:
            out["prompt"].append(prompt)
            out["chosen"].append([{"role": "assistant", "content": chosen}])
            out["rejected"].append([{"role": "assistant", "content": rejected}])
        else:
            text_prompt = build_chat_prompt(template, tokenizer, prompt) if prompt else ""
            if not bos_text and bos_str and text_prompt.startswith(bos_str):
                text_prompt = text_prompt[len(bos_str):]  # the tokenizer adds BOS itself
            out["prompt"].append(text_prompt)
            out["chosen"].append(chosen + suffix if chosen else "")
            out["rejected"].append(rejected + suffix if rejected else "")
        out["drop_reason"].append(reason)
    out["truncated"] = [False] * n
    out["length"] = [0] * n  # prompt + chosen as TRL will cut them
    out["supervised"] = [0] * n  # chosen tokens within max_length
    _check_lengths(out, template, tokenizer, max_length)
    return out


def _encode_pairs(ds, template, tokenizer, system, path, num_proc, max_length: int = 0, keep_rows: bool = False):
    bos_text = template != CHAT_TEMPLATE and _bos_text_needed(tokenizer)
    pairs = ds.map(pairs_batch, batched=True, with_indices=True, remove_columns=ds.column_names,
                   fn_kwargs={"template": template, "tokenizer": tokenizer, "system": system, "bos_text": bos_text,
                              "max_length": max_length},
                   num_proc=num_proc if num_proc > 1 and ds.num_rows >= 2000 else None, desc="Preference pairs")
    stats = DatasetStats(rows=ds.num_rows, template=template, map_fn="preference", max_length=max_length)
    names = ["drop_reason", "truncated", "length", "supervised"]
    table = pairs.with_format("arrow", columns=names)[:]
    for i, (reason, cut, length, supervised) in enumerate(zip(*(table.column(c).to_pylist() for c in names))):
        if reason:
            stats.add_drop(reason, i)
        else:
            stats.kept += 1
            stats.truncated += bool(cut)
            if length:
                stats.lengths.append(length)
                stats.total_tokens += length
                stats.supervised_tokens += supervised
    if stats.kept == 0:
        fix = "Preference data needs prompt, chosen and rejected (see docs/data.md)."
        if prompt_fills_reason(max_length) in stats.dropped:
            fix = (f"Raise data.max_length (now {max_length}; --max-length in check-dataset) above the prompts' "
                   "length plus room for the answers, or shorten the prompts.")
        raise DataError(f"{path}: no usable preference pair: all {stats.rows} row(s) were dropped: "
                        f"{stats.drop_summary()}.", fix)
    if stats.dropped:
        pairs = pairs.filter(lambda r: [not x for x in r], input_columns=["drop_reason"], batched=True)
    pairs = pairs.remove_columns(names + ([] if keep_rows else ["row"]))
    stats.sequences = pairs.num_rows
    return pairs, stats


def build_preference_data(data, tokenizer, *, model_name_or_path: str = "", seed: int = 42, rows=None,
                          keep_rows: bool = False) -> BuiltData:
    """Load preference pairs as TRL DPO/ORPO rows: prompt / chosen / rejected (+ stats).

    ``rows``: the already loaded Dataset of ``data.path``; ``keep_rows`` keeps a ``row`` column (each
    pair's row number, for previews; TRL must not get it)."""
    from tunesmith.core.data.loading import load_rows

    ds = rows if rows is not None else load_rows(data.path, split=data.split)
    cols = set(ds.column_names)
    if "label" in cols and "rejected" not in cols:
        raise DataError(f"{data.path} looks like KTO data (single answers with a label), not preference pairs.",
                        "DPO/ORPO need prompt, chosen and rejected columns.")
    if not ({"chosen", "rejected"} <= cols or ({"instruction", "output"} <= cols)):
        raise DataError(f"{data.path} has no preference pairs: columns {', '.join(ds.column_names)}.",
                        "DPO/ORPO need chosen and rejected columns (plus prompt, conversations or question).")
    template = resolve_template(data.template, model_name_or_path, tokenizer=tokenizer)
    if data.max_samples and data.max_samples < ds.num_rows:
        ds = ds.shuffle(seed=seed).select(range(int(data.max_samples)))
    train_rows, eval_rows = _split_eval(ds, data.eval_size, seed)
    train, stats = _encode_pairs(train_rows, template, tokenizer, data.system, data.path, data.num_proc,
                                 data.max_length, keep_rows)
    eval_ds = eval_stats = None
    if eval_rows is not None:
        eval_ds, eval_stats = _encode_pairs(eval_rows, template, tokenizer, data.system, data.path, data.num_proc,
                                            data.max_length)
    return BuiltData(train=train, eval=eval_ds, stats=stats, template=template, eval_stats=eval_stats)


__all__ = ["build_preference_data", "to_pair"]
