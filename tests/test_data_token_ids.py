"""Texts joined at a special token give each text's own ids (tunesmith.core.data.token_ids)."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from tunesmith.core.data import token_ids
from tunesmith.core.data.token_ids import TextIds, batch_token_ids, joining_separator

CORPUS = ["The quick brown fox jumps over the lazy dog.", "  leading spaces and trailing  ", "tabs\tand\nnew lines",
          "数字 123 4567 and ümlauts", "code: def f(x):\n    return x ** 2", "emoji 🙂 done"] * 20
SPECIALS = ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|longest_special|>"]

# texts that stress the edges of a join: spaces, line breaks, special tokens at either end, nothing at all
TEXTS = ["Hello world", " leading space", "trailing space ", "\nnew line first", "last new line\n", "",
         "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "Answer.<|im_end|>", "  ", "中文 text 123",
         "x", "<s>", "tabs\t\tand more", "ends with special</s>", " ", "many  spaces   inside"] * 3


def _wrap(backend):
    class Wrapped:  # what the encoders hand over: an object with the Rust tokenizer as backend_tokenizer
        backend_tokenizer = backend

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]}
    return Wrapped()


def _trained(model, trainer, normalizer=None, pre_tokenizer=None):
    tok = Tokenizer(model)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens([AddedToken(s, normalized=False) for s in SPECIALS])
    return tok


def _byte_level():
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok = _trained(models.BPE(), trainer, pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False))
    tok.decoder = decoders.ByteLevel()
    return tok


def _byte_level_prefix_space():
    return _trained(models.BPE(), trainers.BpeTrainer(vocab_size=300), pre_tokenizer=pre_tokenizers.ByteLevel(
        add_prefix_space=True))


def _metaspace(scheme):
    return _trained(models.Unigram(), trainers.UnigramTrainer(vocab_size=120, unk_token="<unk>",
                                                              special_tokens=["<unk>"]),
                    normalizer=normalizers.NFKC(), pre_tokenizer=pre_tokenizers.Metaspace(prepend_scheme=scheme))


def _legacy_llama():  # the normalizer puts ▁ before every piece: Prepend + Replace, no pre-tokenizer
    return _trained(models.BPE(unk_token="<unk>", byte_fallback=True),
                    trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"]),
                    normalizer=normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]))


def _word_piece():
    return _trained(models.WordPiece(unk_token="[UNK]"), trainers.WordPieceTrainer(vocab_size=200,
                                                                                    special_tokens=["[UNK]"]),
                    normalizer=normalizers.BertNormalizer(), pre_tokenizer=pre_tokenizers.BertPreTokenizer())


JOINABLE = {"byte_level": _byte_level, "byte_level_prefix_space": _byte_level_prefix_space,
            "metaspace_always": lambda: _metaspace("always"), "metaspace_never": lambda: _metaspace("never"),
            "legacy_llama": _legacy_llama, "word_piece": _word_piece}


def _alone(tok, texts):
    return [tok.encode(t, add_special_tokens=False).ids for t in texts]


@pytest.mark.parametrize("name", sorted(JOINABLE))
def test_joined_texts_give_each_texts_own_ids(name, monkeypatch):
    backend = JOINABLE[name]()
    text_ids = TextIds(_wrap(backend))
    assert text_ids.separator == "<|longest_special|>"  # the longest special token that fits
    calls = []
    monkeypatch.setattr(token_ids, "batch_token_ids", lambda t, texts: calls.append(len(texts)) or
                        batch_token_ids(t, texts))
    monkeypatch.setattr(token_ids, "GROUP_CHARS", 60)  # several groups, some texts alone
    ids, lens = text_ids.flat(TEXTS)
    alone = _alone(backend, TEXTS)
    assert lens.tolist() == [len(a) for a in alone]
    assert ids.tolist() == [i for a in alone for i in a]
    assert ids.dtype == np.int32 and 1 < calls[0] < len(TEXTS)  # joined: fewer texts than given


def test_no_joining_where_a_piece_is_not_tokenised_alike():
    # Metaspace "first" marks only the piece at the start of the text: a joined text would lose the mark
    first = _metaspace("first")
    assert joining_separator(_wrap(first)) is None
    forced = TextIds(_wrap(first))
    forced.separator, forced.separator_id = "<|longest_special|>", first.token_to_id("<|longest_special|>")
    assert forced.flat(TEXTS)[0].tolist() != [i for a in _alone(first, TEXTS) for i in a]
    tok = _byte_level()
    tok.add_special_tokens([AddedToken("<stripped>", lstrip=True, normalized=False)])
    found = joining_separator(_wrap(tok))
    assert found is not None and found[0] != "<stripped>"  # takes the space before it: not a separator
    tok.add_special_tokens([AddedToken("x<|longest", normalized=False)])  # could be found across a join
    assert joining_separator(_wrap(tok))[0] == "<|im_start|>"
    assert joining_separator(_wrap(tok), avoid=("<|im_start|>user\n{input}",))[0] == "<|im_end|>"
    tok.enable_truncation(8)
    assert joining_separator(_wrap(tok)) is None
    # the unknown token: text the vocabulary lacks becomes it, and every such call would go text by text
    only_unk = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    only_unk.pre_tokenizer = pre_tokenizers.Whitespace()
    only_unk.add_special_tokens([AddedToken("<unk>", normalized=False)])
    assert joining_separator(_wrap(only_unk)) is None
    only_unk.add_special_tokens([AddedToken("<sep>", normalized=False)])
    assert joining_separator(_wrap(only_unk)) == ("<sep>", 2)


def test_a_text_holding_the_separator_is_tokenised_one_by_one(monkeypatch):
    backend = _byte_level()
    text_ids = TextIds(_wrap(backend))
    texts = ["before", "holds <|longest_special|> itself", "after", ""]
    sizes = []
    monkeypatch.setattr(token_ids, "batch_token_ids", lambda t, got: sizes.append(len(got)) or batch_token_ids(t, got))
    ids, lens = text_ids.flat(texts)
    alone = _alone(backend, texts)
    assert lens.tolist() == [len(a) for a in alone] and ids.tolist() == [i for a in alone for i in a]
    assert sizes == [1, 3]  # tried joined, then each non-empty text on its own


def test_smollm2_joins_and_matches(tokenizer):
    text_ids = TextIds(tokenizer, avoid=("<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",))
    assert text_ids.separator == "<jupyter_output>"
    ids, lens = text_ids.flat(TEXTS)
    alone = tokenizer(TEXTS, add_special_tokens=False)["input_ids"]
    assert lens.tolist() == [len(a) for a in alone] and ids.tolist() == [i for a in alone for i in a]
