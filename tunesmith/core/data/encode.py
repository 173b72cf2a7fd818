"""Conversations -> ``input_ids`` + ``labels`` exactly as XTuner's ``template_map_fn`` + ``encode_fn``.

For each turn (BOS only at the start and after a turn that ended with EOS):

    [BOS]  SYSTEM + INSTRUCTION   -> masked (-100)
           output + SUFFIX        -> supervised (masked when output_with_loss is False)
           [EOS]                  -> supervised, unless the template's SUFFIX acts as EOS
           SEP                    -> masked

Every segment is tokenised on its own with ``add_special_tokens=False``; the whole sample is then
cut to ``max_length`` keeping the head. The segments of a few hundred samples go to the fast
tokenizer in one call, in a worker thread while the next samples are laid out, and the samples are
assembled as flat arrays (:mod:`tunesmith.core.data.batch`): that is where the speed comes from.

Only the head of a very long sample is tokenised (see :func:`char_budget`): tokenising a 300 MB row
to keep its first 2,048 tokens took more than 17 GB. The ids are the same as tokenising it all.

In ``chat_template`` mode the tokenizer's Jinja template renders the conversation and the mask
comes from the rendered text: exactly each answer and the end token right after it are supervised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tunesmith.core.data.batch import IGNORE_INDEX, EncodedBatch, flat_ids, starts_of
from tunesmith.core.data.templates import CHAT_TEMPLATE, bos_eos_ids, get_template, has_chat_template
from tunesmith.core.data.token_ids import TextIds, batch_token_ids, plain_backend
from tunesmith.core.errors import UserError

# Tokens past max_length that a cut text must still yield before its first max_length tokens are trusted:
# the last few tokens before a cut can differ from the whole text's (a word cut in two).
CUT_MARGIN = 16
_CUT_BACKOFF = 256  # look this far back from a cut for a space or line break to cut at
RETRY_GROWTH = 4  # a cut text that packed tighter than char_budget assumed is encoded again from 4x more
OVERLAP_TOKENS = 4_000_000  # token slots (conversations x max_length) tokenised per call: see overlap_chunk
OVERLAP_DEPTH = 2  # tokenizer calls in flight at once (see overlapped)


def char_budget(max_length: int) -> int:
    """Characters of a sample tokenised at first: 8 per token of max_length.

    A token of the tokenizers we train covers about 4 characters of English prose and 1-3 of Chinese
    or code, so 8 leaves room; text that packs tighter (long runs of one character, spaces) is caught
    by the retry in the encoders, which tokenise 4x more until the cut text yields max_length +
    CUT_MARGIN tokens or nothing is cut. What is tokenised for one sample is thus a few times
    max_length tokens whatever the row holds, not the whole row.

    >>> char_budget(2048)
    16384
    """
    return max(int(max_length), 1) * 8


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a space or line break when one is close.

    >>> cut_text("one two three", 9)
    'one two'
    """
    if len(text) <= limit:
        return text
    head = text[:max(limit, 0)]
    if text[len(head)] in " \n":
        return head
    at = max(head.rfind(" ", len(head) - _CUT_BACKOFF), head.rfind("\n", len(head) - _CUT_BACKOFF))
    return head[:at] if at > 0 else head


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    full_length: int  # tokens before truncation
    supervised: int = -1  # supervised tokens after truncation (-1: count them)
    error: str = ""  # set when this conversation could not be encoded (the row is dropped with it)
    cut: bool = False  # only the head of the text was tokenised (full_length counts that head)

    def __post_init__(self):
        if self.supervised < 0:
            self.supervised = sum(1 for x in self.labels if x != IGNORE_INDEX)

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.input_ids)


def batch_ids_offsets(tokenizer, texts: list[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
    """Token ids and character offsets of each text (no special tokens added)."""
    backend = plain_backend(tokenizer)
    if backend is not None:
        encs = backend.encode_batch(texts, add_special_tokens=False)
        return [e.ids for e in encs], [e.offsets for e in encs]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return enc["input_ids"], enc["offset_mapping"]


def _filler(template_text: str, key: str):
    """A fast ``fill(template_text, key=value, round=n)`` for one placeholder (plus {round}).

    >>> _filler("[Round {round}] Q: {input} A:", "input")("hi", 2)
    '[Round 2] Q: hi A:'
    """
    parts = template_text.split("{" + key + "}")
    if "{round}" in template_text:
        return lambda value, rnd: value.join(p.replace("{round}", str(rnd)) for p in parts)
    return lambda value, rnd: value.join(parts)


def apply_system(conversation: list[dict], system: str) -> list[dict]:
    """Give the first turn ``system`` when no turn of the conversation has one.

    >>> apply_system([{"input": "Q", "output": "A"}], "Be brief.")
    [{'system': 'Be brief.', 'input': 'Q', 'output': 'A'}]
    """
    if not system or any(turn.get("system") for turn in conversation):
        return conversation
    first = {"system": system, **{k: v for k, v in conversation[0].items() if k != "system"}}
    return [first] + list(conversation[1:])


class _Layout:
    """Samples' (text or ids, supervised) pieces laid end to end: the texts to tokenise (each on its own, as
    XTuner's encode_fn does; repeats included, cheaper than a lookup) and the ids given as they are."""

    __slots__ = ("supervised", "counts", "cuts", "is_text", "texts", "given")

    def __init__(self, cut_plans: list[tuple[list, bool]]):
        flat = [pair for plan, _ in cut_plans for pair in plan]
        pieces = [piece for piece, _ in flat]
        self.supervised = [sup for _, sup in flat]
        self.counts = [len(plan) for plan, _ in cut_plans]
        self.cuts = [cut for _, cut in cut_plans]
        self.is_text = np.fromiter(map(isinstance, pieces, [str] * len(pieces)), bool, len(pieces))
        self.texts = [p for p in pieces if isinstance(p, str)]
        self.given = [p for p in pieces if not isinstance(p, str)]


def overlapped(jobs, work, depth: int = OVERLAP_DEPTH):
    """Yield ``(key, work(arg))`` for each ``(key, arg)`` of ``jobs``, in order, running ``work`` in
    ``depth`` worker threads: while they work on jobs k..k+depth-1, the caller assembles job k-1's result
    and the ``jobs`` generator lays out the next.

    Why threads: the Rust tokenizer releases the GIL, so the Python work around it (laying out, then
    turning ids into arrays) runs alongside instead of after it; why two: while one thread turns its ids
    into arrays (holding the GIL), the other keeps the tokenizer's own threads busy (bench/data_pipeline.py).

    >>> list(overlapped(((k, k) for k in range(3)), lambda x: x * 10))
    [(0, 0), (1, 10), (2, 20)]
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(depth, thread_name_prefix="tokenise") as pool:
        pending = deque()
        for key, arg in jobs:
            pending.append((key, pool.submit(work, arg)))
            if len(pending) > depth:
                done_key, future = pending.popleft()
                yield done_key, future.result()
        while pending:
            done_key, future = pending.popleft()
            yield done_key, future.result()


def overlap_chunk(max_length: int) -> int:
    """Conversations tokenised per call while the next ones are laid out (see :func:`overlapped`).

    Large, because every call costs its own Python work around it (1,024 were 10 % faster than 128 on 2
    cores, bench/data_pipeline.py), yet at most OVERLAP_TOKENS token slots, so long samples keep a call's
    text to tens of megabytes.

    >>> overlap_chunk(2048), overlap_chunk(32768), overlap_chunk(1 << 20)
    (1024, 122, 16)
    """
    return max(16, min(1024, OVERLAP_TOKENS // max(int(max_length), 1)))


def chunked(items: list, size: int):
    """``items`` in lists of ``size``.

    >>> list(chunked([1, 2, 3], 2))
    [[1, 2], [3]]
    """
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Encoder:
    """What the pipeline calls: ``encode_stream`` (chunks of conversations -> EncodedBatch each);
    ``encode_flat`` and ``encode_batch`` (one Encoded per sample) for a list."""

    def encode_stream(self, chunks):
        for conversations in chunks:
            yield EncodedBatch.from_lists(self.encode_batch(conversations))

    def encode_flat(self, conversations: list[list[dict]]) -> EncodedBatch:
        return EncodedBatch.concat(list(self.encode_stream(chunked(conversations, overlap_chunk(self.max_length)))))


class XTunerEncoder(_Encoder):
    """XTuner's layout for one of its templates, or no template at all (pre-training)."""

    def __init__(self, tokenizer, template_name: str | None, max_length: int):
        self.tokenizer = tokenizer
        self.template = get_template(template_name) if template_name else None
        self.max_length = int(max_length)
        self.bos, self.eos = bos_eos_ids(tokenizer)
        tpl = self.template
        self._text_ids = TextIds(tokenizer, (tpl.system, tpl.instruction, tpl.suffix, tpl.sep) if tpl else ())
        if self.template is not None:
            # the template's SEP is the same text in every turn: tokenised once here (alone, as XTuner does)
            # instead of once per turn, one text less per sample for the tokenizer
            self._sep = batch_token_ids(tokenizer, [self.template.sep])[0] if self.template.sep else []
            self._instruction = _filler(self.template.instruction, "input")
            self._system = _filler(self.template.system, "system") if self.template.system else None

    def pieces(self, conversation: list[dict]) -> list[tuple[object, bool]]:
        """The sample as (text or token ids, supervised) pieces, in order (XTuner's template_map_fn)."""
        tpl, out = self.template, []
        need_bos = True
        for i, turn in enumerate(conversation):
            system = turn.get("system") or ""
            inp = turn.get("input") or ""
            output = turn.get("output") or ""
            with_loss = turn.get("output_with_loss", True) is not False
            if tpl is not None:
                inp = self._instruction(inp, i + 1)
                if system and self._system is not None:
                    inp = self._system(system, i + 1) + inp
                output = output + tpl.suffix
                need_eos, sep = tpl.need_eos_token, self._sep
            else:
                need_eos, sep = turn.get("need_eos_token", True), turn.get("sep", "") or ""
            if need_bos and self.bos:
                out.append((self.bos, False))
            out.append((inp, False))
            out.append((output, with_loss))
            if need_eos:
                out.append((self.eos, with_loss))
            need_bos = need_eos
            if sep:
                out.append((sep, False))
        return out

    def encode_batch(self, conversations: list[list[dict]]) -> list[Encoded]:
        return to_encoded(self.encode_flat(conversations))

    def encode_stream(self, chunks):
        """One EncodedBatch per list of conversations in ``chunks``. Each chunk is tokenised in a worker
        thread while this one lays out the next (and ``chunks`` yields it) and assembles the previous
        (see :func:`overlapped`)."""

        budget = self.char_budget

        def jobs():
            for conversations in chunks:
                plans = [self.pieces(c) for c in conversations]
                layout = _Layout([_cut_plan(plan, budget) for plan in plans])
                yield (plans, layout), layout.texts

        for (plans, layout), ids in overlapped(jobs(), self._token_ids):
            yield self._settle(plans, self._finish(layout, ids))

    def _settle(self, plans: list, batch: EncodedBatch) -> EncodedBatch:
        """``batch`` with its samples that need more text (rare: texts that pack tighter than
        char_budget assumed) encoded again from RETRY_GROWTH-fold budgets until none does."""
        again = needs_more_text(batch.full_length, batch.cut, self.max_length)
        if not again.any():
            return batch
        budgets = [self.char_budget] * len(plans)
        parts, order, todo = [], [], list(range(len(plans)))
        while again.any():
            final = np.flatnonzero(~again)
            parts.append(batch.take(final))
            order.extend(todo[k] for k in final.tolist())
            todo = [todo[k] for k in np.flatnonzero(again).tolist()]
            for i in todo:
                budgets[i] *= RETRY_GROWTH
            layout = _Layout([_cut_plan(plans[i], budgets[i]) for i in todo])
            batch = self._finish(layout, self._token_ids(layout.texts))
            again = needs_more_text(batch.full_length, batch.cut, self.max_length)
        parts.append(batch)
        order.extend(todo)
        return EncodedBatch.concat(parts).take(np.argsort(order, kind="stable"))

    @property
    def char_budget(self) -> int:
        return char_budget(self.max_length)

    def _token_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return self._text_ids.flat(texts)

    def _finish(self, layout: _Layout, text_ids: tuple[np.ndarray, np.ndarray]) -> EncodedBatch:
        """A layout and the (flat) ids of its texts -> the samples, cut to max_length."""
        text_flat, text_len = text_ids
        given_flat, given_len = flat_ids(layout.given)
        piece_len = np.empty(len(layout.is_text), np.int64)
        piece_len[layout.is_text], piece_len[~layout.is_text] = text_len, given_len
        from_text = np.repeat(layout.is_text, piece_len)
        ids = np.empty(len(from_text), np.int32)
        ids[from_text], ids[~from_text] = text_flat, given_flat
        sup_tokens = np.repeat(np.fromiter(layout.supervised, bool, len(layout.supervised)), piece_len)
        labels = np.where(sup_tokens, ids, np.int32(IGNORE_INDEX))
        piece_at = starts_of(np.fromiter(layout.counts, np.int64, len(layout.counts)))
        token_at = starts_of(piece_len)
        batch = EncodedBatch.truncated(ids, labels, token_at[piece_at[1:]] - token_at[piece_at[:-1]], self.max_length)
        batch.cut = np.fromiter(layout.cuts, bool, len(layout.cuts))
        return batch

    def overhead(self, system: str = "") -> int:
        """Tokens the template itself puts around one empty answer (BOS, system, instruction, suffix, EOS)."""
        turn = {"system": system, "input": "", "output": ""}
        enc = self.encode_batch([[turn]])[0]
        return enc.full_length - (len(self._sep) if self.template else 0)


def needs_more_text(full_length, cut, max_length: int):
    """Whether a sample encoded from the head of its text (``cut``) must be encoded again from more text.

    A cut text that still comes to fewer than max_length + CUT_MARGIN tokens packs tighter than
    :func:`char_budget` assumed: its budget grows RETRY_GROWTH-fold and it is encoded again, so a cut never
    changes the ids a whole-text encoding gives within max_length. Takes numbers or numpy arrays.

    >>> needs_more_text(100, True, 2048), needs_more_text(5000, True, 2048), needs_more_text(100, False, 2048)
    (True, False, False)
    """
    return cut & (full_length < max_length + CUT_MARGIN)


def settled(enc: Encoded, cut: bool, budgets: list[int], i: int, max_length: int) -> bool:
    """Whether sample ``i`` is final (then ``enc.cut`` says whether text was left out); if not, its
    budget grows and the caller encodes it again."""
    if needs_more_text(enc.full_length, cut, max_length):
        budgets[i] *= RETRY_GROWTH
        return False
    enc.cut = cut
    return True


def to_encoded(batch: EncodedBatch) -> list[Encoded]:
    """The batch as one :class:`Encoded` per sample."""
    return [Encoded(*batch.sample(i), int(batch.full_length[i]), int(batch.supervised[i]), batch.errors[i],
                    bool(batch.cut[i])) for i in range(len(batch))]


def _cut_plan(plan: list, budget: int) -> tuple[list, bool]:
    """The pieces that fit in ``budget`` characters (the last one cut), and whether anything was cut.

    >>> _cut_plan([([1], False), ("ab cd", True)], 3)
    ([([1], False), ('ab', True)], True)
    """
    used = 0
    for i, (piece, supervised) in enumerate(plan):
        if isinstance(piece, str):
            used += len(piece)
            if used > budget:
                head = cut_text(piece, budget - used + len(piece))
                return plan[:i] + ([(head, supervised)] if head else []), True
    return plan, False


def _truncate(input_ids: list[int], labels: list[int], max_length: int, supervised: int = -1) -> Encoded:
    full = len(input_ids)
    if full > max_length:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return Encoded(input_ids, labels, full, supervised)


def conversation_to_messages(conversation: list[dict]) -> list[dict]:
    """XTuner turns -> chat messages (system, user, assistant) for a Jinja chat template.

    >>> conversation_to_messages([{"input": "Q", "output": "A", "output_with_loss": False}])
    [{'role': 'user', 'content': 'Q'}, {'role': 'assistant', 'content': 'A', 'loss': False}]
    """
    messages = []
    for turn in conversation:
        if turn.get("system"):
            messages.append({"role": "system", "content": turn["system"]})
        messages.append({"role": "user", "content": turn.get("input") or ""})
        msg = {"role": "assistant", "content": turn.get("output") or ""}
        if turn.get("output_with_loss", True) is False:
            msg["loss"] = False
        messages.append(msg)
    return messages


_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


def supports_generation_mask(tokenizer) -> bool:
    """True when the tokenizer's chat template marks the answers with ``{% generation %}``, so
    ``apply_chat_template(return_assistant_tokens_mask=True)`` gives the loss mask directly."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default", "")
    return isinstance(template, str) and bool(_GENERATION_TAG.search(template))


class ChatTemplateEncoder(_Encoder):
    """The tokenizer's own chat template; the mask follows the rendered answers.

    Where the template marks its answers with ``{% generation %}``, transformers' assistant-token mask is
    the loss mask; otherwise (most templates) each answer is found in the rendered text (re-rendering the
    conversation up to it, then string search), with the special token that ends it. A conversation with an
    answer whose loss is off takes the second way too (the mask cannot tell the answers apart).
    """

    def __init__(self, tokenizer, max_length: int):
        if not has_chat_template(tokenizer):
            raise UserError("the tokenizer has no chat template of its own.",
                            "Pick an XTuner template (see `python -m tunesmith list-templates`).", field="data.template")
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
        specials.update((getattr(tokenizer, "get_added_vocab", dict)() or {}).keys())
        specials.discard("")
        self._end_token = re.compile(r"\s*(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))
                                     + ")") if specials else None
        self.generation_mask = supports_generation_mask(tokenizer)

    def _mask_or_error(self, conversation, budget: int) -> tuple[Encoded, bool] | str:
        """Encode with the template's own assistant mask ({% generation %} templates)."""
        try:
            messages, cut = _cut_messages(conversation_to_messages(conversation), budget)
            out = self.tokenizer.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in messages],
                                                     tokenize=True, return_dict=True,
                                                     return_assistant_tokens_mask=True)
        except Exception as exc:  # Jinja templates raise on layouts they do not support
            return f"the chat template refused this conversation ({str(exc).splitlines()[0][:120]})"
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]
        return _truncate(ids, labels, self.max_length), cut

    def _uses_mask(self, conversation) -> bool:
        return self.generation_mask and all(turn.get("output_with_loss", True) is not False for turn in conversation)

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        clean = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self.tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=generation_prompt)

    def render(self, conversation: list[dict], budget: int | None = None) -> tuple[str, list[tuple[int, int]]]:
        """(full text, character spans to supervise); with ``budget``, of the messages' first that many
        characters (see :func:`_cut_messages`)."""
        messages = conversation_to_messages(conversation)
        if budget is not None:
            messages, _ = _cut_messages(messages, budget)
        return self._render_spans(messages)

    def _render_spans(self, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
        full = self._render(messages, False)
        spans, cursor = [], 0
        for j, msg in enumerate(messages):
            if msg["role"] != "assistant":
                continue
            content = msg["content"]
            start = -1
            prefix = self._render(messages[:j], True)
            if full.startswith(prefix):
                for candidate in (content, content.strip()):
                    if candidate and full.startswith(candidate, len(prefix)):
                        start, content = len(prefix), candidate
                        break
            if start < 0:  # the template rewrites earlier turns: find the answer after the last one
                for candidate in (content, content.strip()):
                    start = full.find(candidate, cursor) if candidate else -1
                    if start >= 0:
                        content = candidate
                        break
            if start < 0:
                continue
            end = start + len(content)
            if self._end_token is not None:
                m = self._end_token.match(full, end)
                if m:
                    end_tok = (m.start(1), m.end(1))
                    if msg.get("loss", True) is not False:
                        spans.append((start, end))
                        spans.append(end_tok)
                    cursor = m.end(1)
                    continue
            if msg.get("loss", True) is not False:
                spans.append((start, end))
            cursor = end
        return full, spans

    def _render_or_error(self, conversation, budget: int) -> tuple[str, list, bool] | str:
        try:
            messages, cut = _cut_messages(conversation_to_messages(conversation), budget)
            return (*self._render_spans(messages), cut)
        except Exception as exc:  # Jinja templates raise on layouts they do not support
            return f"the chat template refused this conversation ({str(exc).splitlines()[0][:120]})"

    @property
    def char_budget(self) -> int:
        return char_budget(self.max_length)

    def encode_batch(self, conversations: list[list[dict]]) -> list[Encoded]:
        budgets = [self.char_budget] * len(conversations)
        results: list[Encoded | None] = [None] * len(conversations)
        todo = list(range(len(conversations)))
        while todo:
            direct = {i: self._mask_or_error(conversations[i], budgets[i]) for i in todo
                      if self._uses_mask(conversations[i])}
            attempts = {i: self._render_or_error(conversations[i], budgets[i]) for i in todo if i not in direct}
            for i, got in direct.items():
                if isinstance(got, str):
                    attempts[i] = got  # reported below with the other refusals
                    continue
                enc, cut = got
                if settled(enc, cut, budgets, i, self.max_length):
                    results[i] = enc
            retry_direct = [i for i, got in direct.items() if not isinstance(got, str) and results[i] is None]
            rendered = [(i, a) for i, a in attempts.items() if not isinstance(a, str)]
            all_ids, all_offsets = (batch_ids_offsets(self.tokenizer, [a[0] for _, a in rendered]) if rendered
                                    else ([], []))
            retry = []
            for (i, (_, _, cut)), enc in zip(rendered, self._label([a[:2] for _, a in rendered], all_ids, all_offsets)):
                if settled(enc, cut, budgets, i, self.max_length):
                    results[i] = enc
                else:
                    retry.append(i)
            for i, a in attempts.items():
                if isinstance(a, str):
                    results[i] = Encoded([], [], 0, 0, error=a)
            todo = retry + retry_direct
        return results

    def _label(self, rendered, all_ids, all_offsets) -> list[Encoded]:
        results = []
        for (text, spans), ids, offsets in zip(rendered, all_ids, all_offsets):
            labels = [IGNORE_INDEX] * len(ids)
            if spans:
                k = 0
                for t, (s, e) in enumerate(offsets):
                    if e <= s:
                        continue
                    while k < len(spans) and spans[k][1] <= s:
                        k += 1
                    if k == len(spans):
                        break
                    if spans[k][0] <= s < spans[k][1]:
                        labels[t] = ids[t]
            results.append(_truncate(list(ids), labels, self.max_length))
        return results

    def overhead(self, system: str = "") -> int:
        turn = {"system": system, "input": "", "output": ""}
        return self.encode_batch([[turn]])[0].full_length


def _cut_messages(messages: list[dict], budget: int) -> tuple[list[dict], bool]:
    """The messages within ``budget`` characters of content, and whether anything was cut.

    The message where the budget runs out is cut; when it is not an answer, the turn is completed with
    empty messages up to the next answer, so templates that insist on user/assistant turns still
    render (nothing after the cut is within max_length anyway).

    >>> _cut_messages([{"role": "user", "content": "a b c d"}, {"role": "assistant", "content": "e"}], 3)
    ([{'role': 'user', 'content': 'a b'}, {'role': 'assistant', 'content': ''}], True)
    """
    out, used = [], 0
    for i, msg in enumerate(messages):
        content = msg["content"]
        if used + len(content) <= budget:
            out.append(msg)
            used += len(content)
            continue
        out.append({**msg, "content": cut_text(content, budget - used)})
        if msg["role"] != "assistant":
            for later in messages[i + 1:]:
                out.append({**later, "content": ""})
                if later["role"] == "assistant":
                    break
        return out, True
    return out, False


def make_encoder(tokenizer, template_name: str | None, max_length: int):
    """The encoder for a resolved template name ("" or None: no template, as for pre-training)."""
    if template_name == CHAT_TEMPLATE:
        return ChatTemplateEncoder(tokenizer, max_length)
    return XTunerEncoder(tokenizer, template_name or None, max_length)
