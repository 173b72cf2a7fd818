"""Token ids of many texts from the Rust tokenizer, each text tokenised on its own, in as few calls
and as few texts as the tokenizer allows.

Why join texts: the backend costs about as much per text (an Encoding with its token strings,
offsets and masks, then a Python list) as per few hundred characters, so the two or three short
texts of every sample cost a quarter more than their characters (bench/data_pipeline.py).
:class:`TextIds` therefore hands the backend several texts at once, joined by a special token, and
splits the ids again where that token stands. That gives each text's own ids because of how
``tokenizers`` works: it first cuts the text at its added tokens, then normalises, pre-tokenises and
tokenises every piece between them on its own. Joining is used only where that holds exactly
(:func:`joining_separator`), and a call whose ids show the separator anywhere but where it was put
(a text that holds the separator's text itself) is tokenised text by text instead.
"""

from __future__ import annotations

import json
import threading

import numpy as np

from tunesmith.core.data.batch import flat_ids, starts_of

GROUP_CHARS = 16384  # texts are joined up to about this many characters; a longer text goes alone

# Normalizers and pre-tokenizers that treat every piece between added tokens alike, wherever it stands.
# Metaspace with prepend_scheme "first" is not among them: it marks only the piece at the start of the text.
_PIECEWISE_NORMALIZERS = {"Sequence", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip", "StripAccents", "Replace",
                          "Prepend", "Precompiled", "BertNormalizer", "Nmt", "ByteLevel"}
_PIECEWISE_PRE_TOKENIZERS = {"Sequence", "ByteLevel", "Split", "Digits", "Punctuation", "Whitespace",
                             "WhitespaceSplit", "BertPreTokenizer", "CharDelimiterSplit", "UnicodeScripts",
                             "FixedLength", "Metaspace"}
_MODELS = {"BPE", "WordPiece", "Unigram", "WordLevel"}
# transformers sets the backend's truncation and padding on each call: two threads at once would collide
_TRANSFORMERS_CALL = threading.Lock()


def batch_token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """``tokenizer(texts, add_special_tokens=False)["input_ids"]``, straight from the Rust tokenizer.

    The backend's ``encode_batch_fast`` skips offsets and Python-side conversion; it is only used
    when no truncation or padding is configured on the backend, so the ids are the same.
    """
    backend = plain_backend(tokenizer)
    if backend is not None:
        encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
        return [e.ids for e in encode(texts, add_special_tokens=False)]
    with _TRANSFORMERS_CALL:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]


def plain_backend(tokenizer):
    """The Rust tokenizer when nothing (truncation, padding) changes what it returns, else None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        return backend
    return None


def _components(state: bytes | None, kind: str):
    """The ``type`` of a normalizer / pre-tokenizer and of every step of a Sequence, with their settings."""
    if state is None:
        return
    stack = [json.loads(state)]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        stack.extend(node.get(kind, None) or [])


def _pieces_alike(backend) -> bool:
    """Whether the backend tokenises each piece between two added tokens as it tokenises that piece alone."""
    if type(backend.model).__name__ not in _MODELS or getattr(backend.model, "dropout", None):
        return False  # an unknown model, or BPE dropout (random by design)
    if getattr(backend, "encode_special_tokens", False):
        return False  # special tokens are not split out of the text at all
    for component, kind, allowed in ((backend.normalizer, "normalizers", _PIECEWISE_NORMALIZERS),
                                     (backend.pre_tokenizer, "pretokenizers", _PIECEWISE_PRE_TOKENIZERS)):
        state = component.__getstate__() if component is not None else None
        for node in _components(state, kind):
            if node.get("type") not in allowed:
                return False
            if node.get("type") == "Metaspace" and node.get("prepend_scheme", "always") not in ("always", "never"):
                return False
    return True


def joining_separator(tokenizer, avoid: tuple[str, ...] = ()) -> tuple[str, int] | None:
    """(text, id) of a special token that can join texts (see the module doc), or None.

    The token must be split out of any text before normalising (``normalized=False``), take no space
    beside it (no ``lstrip``/``rstrip``), not depend on word boundaries, begin and end with punctuation, and
    share no characters across its edges with another added token, so no other token can be found
    across a join; it must not occur in ``avoid`` (the template's own texts, which every sample holds) and
    not be the model's unknown token (which text the vocabulary lacks turns into: every call with such
    text would go text by text).

    >>> from tokenizers import Tokenizer, AddedToken, models, pre_tokenizers
    >>> t = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    >>> t.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> _ = t.add_special_tokens([AddedToken("<sep>", normalized=False)])
    >>> class Tok: backend_tokenizer = t
    >>> joining_separator(Tok())
    ('<sep>', 2)
    """
    backend = plain_backend(tokenizer)
    if backend is None or not _pieces_alike(backend):
        return None
    added = backend.get_added_tokens_decoder()
    contents = [tok.content for tok in added.values()]
    unknown = {getattr(backend.model, "unk_id", None),
               backend.token_to_id(getattr(backend.model, "unk_token", "") or "")}
    candidates = []
    for token_id, tok in added.items():
        text = tok.content
        if (token_id in unknown or not tok.special or tok.normalized or tok.lstrip or tok.rstrip or tok.single_word
                or len(text) < 2 or _wordish(text[0]) or _wordish(text[-1]) or any(text in a for a in avoid if a)):
            continue
        if any(other != text and _overlaps(other, text) for other in contents):
            continue
        candidates.append((len(text), -token_id, text))
    if not candidates:
        return None
    _, neg_id, text = max(candidates)  # the longest: the least likely to occur in the data
    return text, -neg_id


def _wordish(char: str) -> bool:
    return char.isalnum() or char.isspace() or char == "_"


def _overlaps(other: str, sep: str) -> bool:
    """Whether ``other`` could match across an edge of ``sep``: it holds ``sep``, or one of its ends is
    an end of ``sep`` seen from outside.

    >>> _overlaps("x<s>", "<s>"), _overlaps("a<", "<s>"), _overlaps(">b", "<s>"), _overlaps("<t>", "<s>")
    (True, True, True, False)
    """
    if sep in other:
        return True
    return any(other.endswith(sep[:k]) or other.startswith(sep[-k:]) for k in range(1, len(sep)))


class TextIds:
    """The ids of a list of texts as one flat array, each text tokenised as if alone (joined where the
    tokenizer allows, see the module doc). ``avoid``: texts every sample holds (the template's), which the
    separator must not occur in."""

    def __init__(self, tokenizer, avoid: tuple[str, ...] = ()):
        self.tokenizer = tokenizer
        found = joining_separator(tokenizer, avoid)
        self.separator, self.separator_id = found if found else ("", -1)

    def flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(the ids of all ``texts`` end to end as int32, the number of ids of each text)."""
        if self.separator and len(texts) > 1:
            joined = self._joined(texts)
            if joined is not None:
                return joined
        return self._one_by_one(texts)

    def _one_by_one(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        full = [t for t in texts if t]
        ids, lens = flat_ids(batch_token_ids(self.tokenizer, full) if full else [])
        if len(full) == len(texts):
            return ids, lens
        out = np.zeros(len(texts), np.int64)  # an empty text has no ids and costs the tokenizer a call
        out[np.fromiter(map(bool, texts), bool, len(texts))] = lens
        return ids, out

    def _joined(self, texts: list[str]):
        """The ids from texts joined into groups of about GROUP_CHARS, or None when a separator id turns up
        where none was put."""
        groups, sizes, start, chars = [], [], 0, 0
        for i, text in enumerate(texts):
            size = len(text)
            if chars and chars + size > GROUP_CHARS:
                groups.append(self.separator.join(texts[start:i]))
                sizes.append(i - start)
                start, chars = i, 0
            chars += size + len(self.separator)
        groups.append(self.separator.join(texts[start:]))
        sizes.append(len(texts) - start)
        ids, group_len = flat_ids(batch_token_ids(self.tokenizer, groups))
        sizes = np.asarray(sizes, np.int64)
        is_sep = ids == self.separator_id
        sep_at = np.flatnonzero(is_sep)
        group_end = starts_of(group_len)[1:]
        seps_before_end = np.searchsorted(sep_at, group_end)  # separators up to each group's end
        if not np.array_equal(np.diff(seps_before_end, prepend=0), sizes - 1):
            return None  # a text holds the separator itself: its ids cannot be told apart from the joins
        # where each text ends once the separators are taken out: at each separator, and at each group's end
        cuts = np.sort(np.concatenate([sep_at - np.arange(len(sep_at)), group_end - seps_before_end]), kind="stable")
        return ids[~is_sep], np.diff(cuts, prepend=0)
