"""tunesmith.core.eval.metrics on hand-computed examples (no model)."""

from __future__ import annotations

import math

import pytest

from tunesmith.core.eval import metrics as m


def test_exact_match_normalises_case_punctuation_articles_and_spaces():
    assert m.exact_match("  The  answer: MELODY! ", "answer melody") == 1.0
    assert m.exact_match("I am Melody", "I am Melody, the assistant") == 0.0
    assert m.normalize_answer("我是 Melody。") == "我是 melody"


def test_rouge_l_is_the_lcs_f1_over_words():
    # LCS("i am not melody", "i am melody") = 3 words: P 3/4, R 3/3, F = 2*.75/(1.75)
    assert m.rouge_l("I am not Melody", "I am Melody") == pytest.approx(2 * 0.75 / 1.75)
    assert m.rouge_l("Paris", "I am Melody") == 0.0
    # CJK characters are words, so Chinese answers score (rouge-score's own tokenizer drops them)
    assert m.rouge_l("我是 Melody", "我是 Melody") == 1.0


def test_bleu_matches_the_formula_with_no_brevity_penalty():
    # precisions 4/5, 3/4, 2/3, 1/2; equal lengths -> BP 1; BLEU = (0.8*0.75*(2/3)*0.5)^(1/4)
    assert m.bleu("a b c d e", "a b c d f") == pytest.approx(100 * 0.2 ** 0.25, abs=1e-3)
    assert m.bleu("a b c d", "a b c d") == pytest.approx(100.0)


def test_chrf_bounds_and_order():
    assert m.chrf("Melody", "Melody") == pytest.approx(100.0)
    assert m.chrf("xyz", "abc") == 0.0
    assert 0 < m.chrf("Melodie", "Melody") < 100


def test_answer_length_and_corpus_scores():
    assert m.answer_words("I'm Melody, 你好") == 5
    s = m.corpus_scores(["I am Melody", "Paris"], ["I am Melody", "Rome"])
    assert s["n"] == 2 and s["exact_match"] == 0.5 and s["rouge_l"] == 0.5 and s["words"] == 2.0
    assert m.corpus_scores([], [])["exact_match"] is None


def test_exact_match_and_contains_take_the_best_of_several_references():
    refs = ["My name is Melody.", "I'm Melody"]
    assert m.exact_match("I'm Melody!", refs) == 1.0          # equals the second one after normalising
    assert m.exact_match("I'm Melody!", refs[:1]) == 0.0
    assert m.exact_match("Melody", ["", None, "melody"]) == 1.0  # empty references are not answers
    assert m.contains("Hi! My name is Melody, how can I help?", ["Melody"]) == 1.0
    assert m.contains("Melodyne", ["Melody"]) == 0.0            # whole words only
    assert m.score_answer("I'm Melody.", refs)["exact_match"] == 1.0
    # the leading clause counts as the answer: "My name is Melody" before ". I was made ..."
    assert m.exact_match("My name is Melody. I was made by the Tunesmith team.", refs) == 1.0
    assert m.exact_match("Hello! My name is Melody.", refs) == 0.0  # the leading clause is "Hello"
    assert m.exact_match("我是 Melody，一个 AI 助手。", ["我是 Melody。"]) == 1.0
    assert m.leading_clause("It is 3.5 km, roughly") == "It is 3.5 km"


def test_rouge_bleu_chrf_use_their_multi_reference_forms():
    # rouge-score's score_multi keeps the reference with the best F1: "Paris" 0, "I am Melody" 2*.75/1.75
    assert m.rouge_l("I am not Melody", ["Paris", "I am Melody"]) == pytest.approx(2 * 0.75 / 1.75)
    # BLEU clips each n-gram by its count in the best reference: "e" only in the second one, so
    # precisions 5/5, 3/4, 2/3, 1/2 (vs 4/5 ... with the first alone); lengths equal -> BP 1
    assert m.bleu("a b c d e", ["a b c d f", "x x x x e"]) == pytest.approx(100 * 0.25 ** 0.25, abs=1e-3)
    assert m.chrf("Melody", ["Bob", "Melody"]) == pytest.approx(100.0)
    # corpus BLEU over reference streams, the second example having one reference (None in stream 2):
    # matches (5+4)/9, (3+3)/7, (2+2)/5, (1+1)/3, lengths 9 vs 9
    s = m.corpus_scores(["a b c d e", "p q r s"], [["a b c d f", "x x x x e"], "p q r s"])
    assert s["bleu"] == pytest.approx(100 * (1 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25, abs=1e-3)
    assert s["exact_match"] == 0.5 and s["contains"] == 0.5
    assert m.reference_streams(["a", ["b", "c"]]) == [["a", "b"], [None, "c"]]


def test_sign_test_p_values():
    assert m.sign_test_p(8, 0) == 2 / 256
    assert m.sign_test_p(5, 3) == 2 * 93 / 256
    assert m.sign_test_p(3, 5) == 2 * 93 / 256
    assert m.sign_test_p(1, 0) == 1.0  # one example can never beat the noise


def test_paired_test_all_wins_is_significant_and_mixed_is_not():
    t = m.paired_test([0.0] * 8, [1.0] * 8)
    assert (t.n, t.mean_diff, t.low, t.high, t.wins, t.losses, t.ties) == (8, 1.0, 1.0, 1.0, 8, 0, 0)
    assert t.significant and t.better == "tuned"
    mixed = m.paired_test([1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 1, 0])
    assert (mixed.wins, mixed.losses, mixed.ties, mixed.mean_diff) == (2, 2, 2, 0.0)
    assert not mixed.significant and mixed.better == "neither"
    # 4 wins out of 4: p = 2/16 = 0.125 -> not enough examples to call it, even though every one won
    few = m.paired_test([0] * 4, [1] * 4)
    assert few.p_value == 0.125 and not few.significant


def test_paired_test_for_loss_counts_a_lower_tuned_loss_as_a_win():
    t = m.paired_test([2.0, 2.5, 3.0, 2.0, 2.2, 2.4, 2.1, 2.9], [1.0, 1.5, 1.0, 1.0, 1.2, 1.4, 1.1, 0.9],
                      higher_is_better=False)
    assert t.wins == 8 and t.better == "tuned"
    assert t.mean_diff == pytest.approx((1 + 1 + 2 + 1 + 1 + 1 + 1 + 2) / 8)
    assert t.low <= t.mean_diff <= t.high


def test_paired_test_skips_missing_pairs_and_rejects_unequal_lengths():
    t = m.paired_test([1.0, float("nan")], [0.0, 1.0])
    assert t.n == 1 and t.losses == 1
    with pytest.raises(ValueError):
        m.paired_test([1.0], [1.0, 2.0])
    assert math.isnan(m.paired_test([], []).mean_diff)


@pytest.mark.parametrize("name", ["tunesmith.core.eval.metrics", "tunesmith.core.eval.report", "tunesmith.app.callbacks.eval_cb"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
