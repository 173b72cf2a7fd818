"""Tokenising many template segments fast: batch them, and reuse the pieces they share.

The tokenizers library cuts text at added tokens (``<|im_start|>``, ``<|im_end|>``, ...) before
anything else, so for most tokenizers ``ids("A<|im_end|>B") == ids("A") + ids("<|im_end|>") + ids("B")``.
Splitting there lets a batch tokenise each distinct piece once: the template's own text and a
constant system prompt (``system\\nBelow is an instruction ...``) are tokenised once per batch
instead of once per row. The split is only used when the tokenizer's added tokens do not eat
neighbouring spaces and a probe shows identical ids; otherwise whole segments are tokenised.
"""

from __future__ import annotations

import re

_PROBE_TEXTS = ("Hello{t}world", " a\n{t}\n b c", "{t}{t}x y", "x{t} ", "\n\n{t}Hi there, 12 345!", "中文{t}文本")


def batch_token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """``tokenizer(texts, add_special_tokens=False)["input_ids"]``, straight from the Rust tokenizer.

    The backend's ``encode_batch_fast`` skips offsets and Python-side conversion; it is only used
    when no truncation or padding is configured on the backend, so the ids are the same.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
        return [e.ids for e in encode(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _added_tokens(tokenizer) -> list:
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return [tok for tok in decoder.values() if getattr(tok, "content", "")]


def make_splitter(tokenizer):
    """A compiled regex splitting at added tokens (kept as pieces), or None when splitting is not exact."""
    tokens = _added_tokens(tokenizer)
    if not tokens or getattr(tokenizer, "backend_tokenizer", None) is None:
        return None
    if any(getattr(t, "lstrip", False) or getattr(t, "rstrip", False) or getattr(t, "single_word", False)
           for t in tokens):
        return None
    contents = sorted({t.content for t in tokens}, key=len, reverse=True)
    pattern = re.compile("(" + "|".join(re.escape(c) for c in contents) + ")")
    probes = [p.format(t=c) for c in contents[:8] for p in _PROBE_TEXTS]
    whole = batch_token_ids(tokenizer, probes)
    for text, ids in zip(probes, whole):
        parts = [p for p in pattern.split(text) if p]
        joined = [i for part in batch_token_ids(tokenizer, parts) for i in part]
        if joined != list(ids):
            return None
    return pattern


class SegmentTokenizer:
    """``ids_for(texts) -> {text: ids}`` for a batch of segment strings, identical to tokenising each alone."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.splitter = make_splitter(tokenizer)

    def ids_for(self, texts: list[str]) -> dict[str, list[int]]:
        texts = [t for t in dict.fromkeys(texts) if t]
        if not texts:
            return {}
        if self.splitter is None:
            return dict(zip(texts, batch_token_ids(self.tokenizer, texts)))
        split = self.splitter.split
        parts_of = {t: [p for p in split(t) if p] for t in texts}
        unique = list(dict.fromkeys(p for parts in parts_of.values() for p in parts))
        table = dict(zip(unique, batch_token_ids(self.tokenizer, unique)))
        out = {}
        for t, parts in parts_of.items():
            if len(parts) == 1:
                out[t] = table[parts[0]]
            else:
                ids = []
                for p in parts:
                    ids.extend(table[p])
                out[t] = ids
        return out
