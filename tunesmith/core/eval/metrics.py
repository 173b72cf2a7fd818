"""Reference-based scores for generated answers, and whether a base-vs-tuned gap is more than noise.

Pure functions (no torch). ROUGE comes from ``rouge-score`` and BLEU / chrF from ``sacrebleu``, so
the numbers match what other tools report for the same texts.

A reference is one text or a list of accepted texts. With several, each score takes the multi-reference
form QA and MT benchmarks use: exact match and "contains" are the best over the references (SQuAD),
ROUGE-L the best F1 (rouge-score's ``score_multi``), BLEU and chrF count n-grams against all of them
(sacrebleu's reference streams).
"""

from __future__ import annotations

import math
import random
import re
import string
from dataclasses import asdict, dataclass

METRICS = ("exact_match", "contains", "rouge_l", "bleu", "chrf", "words")
# Scores where a bigger value is better; "words" is descriptive only, "loss" is better when lower.
HIGHER_IS_BETTER = {"exact_match": True, "contains": True, "rouge_l": True, "bleu": True, "chrf": True,
                    "loss": False}

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | set("，。！？；：、“”‘’（）《》【】…")
# CJK characters carry a word each; without this, rouge-score's ASCII tokenizer drops Chinese entirely.
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no English articles, single spaces (SQuAD's normalisation).

    >>> normalize_answer("  The answer is: Melody! ")
    'answer is melody'
    """
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def as_references(reference) -> list[str]:
    """The accepted answers as a list of non-empty texts (one text, or a list of them).

    >>> as_references("Melody"), as_references(["My name is Melody.", "", "I am Melody"])
    (['Melody'], ['My name is Melody.', 'I am Melody'])
    """
    refs = [reference] if isinstance(reference, str) else list(reference or [])
    return [str(r) for r in refs if r is not None and str(r).strip()] or [""]


# Where a generated answer's leading clause ends: sentence or clause punctuation followed by a space or
# the end (so "3.5" stays whole), a line break, or CJK punctuation.
_CLAUSE_END = re.compile(r"[.!?,;:](?=\s|$)|[\n。！？，；：]")


def leading_clause(text: str) -> str:
    """The answer up to its first clause break, the span generative QA tasks score (lm-eval's
    TriviaQA / NQ-open stop generating at "\\n", "." and ",").

    >>> leading_clause("My name is Melody. I was made by the team."), leading_clause("我是 Melody，一个 AI 助手。")
    ('My name is Melody', '我是 Melody')
    >>> leading_clause("It costs 3.5 euros")
    'It costs 3.5 euros'
    """
    return _CLAUSE_END.split(str(text).strip(), maxsplit=1)[0].strip()


def exact_match(prediction: str, reference) -> float:
    """1.0 when the normalised answer, or its leading clause, equals the normalised reference or any
    of several (SQuAD's max over accepted answers), else 0.0. The leading clause counts because a chat
    model wraps a short answer in a sentence ("My name is Melody. I was made by ..."); a short reference
    can only match that span, and a whole-sentence reference still needs the whole answer.

    >>> exact_match("I am Melody.", "i am melody"), exact_match("I am Melody", "I am Bob")
    (1.0, 0.0)
    >>> exact_match("I'm Melody!", ["My name is Melody.", "I'm Melody"])
    1.0
    >>> exact_match("I'm Melody, made by the team.", "I'm Melody"), exact_match("I'm Melody, made by X.", "made by X")
    (1.0, 0.0)
    """
    answers = {normalize_answer(prediction), normalize_answer(leading_clause(prediction))}
    return float(any(normalize_answer(r) in answers for r in as_references(reference)))


def contains(prediction: str, reference) -> float:
    """1.0 when a normalised reference appears in the normalised answer as whole words (a looser
    exact match for answers that add a sentence around the expected one), else 0.0.

    >>> contains("Hello! My name is Melody, how can I help?", ["Melody"]), contains("Melodyne", "Melody")
    (1.0, 0.0)
    """
    answer = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(r)} " in answer for r in as_references(reference)
                     if normalize_answer(r)))


def tokens(text: str) -> list[str]:
    """Lower-cased words (each CJK character is one), as used for ROUGE and answer length.

    >>> tokens("I'm Melody, 你好")
    ['i', 'm', 'melody', '你', '好']
    """
    return _TOKEN.findall(str(text).lower())


class _Tokenizer:
    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


_SCORER = None


def rouge_l(prediction: str, reference) -> float:
    """ROUGE-L F1 (longest common subsequence of words), 0..1; the best over several references.

    >>> round(rouge_l("I am Melody the assistant", "I am Melody"), 4)  # P 3/5, R 3/3 -> F 0.75
    0.75
    >>> round(rouge_l("I am Melody the assistant", ["Melody", "I am Melody"]), 4)  # 2*(1/5)/(1/5+1)=0.333 vs 0.75
    0.75
    """
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())
    return float(_SCORER.score_multi(as_references(reference), str(prediction))["rougeL"].fmeasure)


def bleu(prediction: str, reference) -> float:
    """Sentence BLEU (sacrebleu, exponential smoothing), 0..100; n-grams are matched against all references.

    >>> round(bleu("the cat sat on the mat", "the cat sat on the mat"), 6)
    100.0
    >>> round(bleu("the cat sat on the mat", ["a dog ran", "the cat sat on the mat"]), 6)
    100.0
    """
    import sacrebleu

    return float(sacrebleu.sentence_bleu(str(prediction), as_references(reference)).score)


def chrf(prediction: str, reference) -> float:
    """Sentence chrF (character n-gram F-score, sacrebleu), 0..100; the best over the references.

    >>> chrf("Melody", "Melody"), chrf("Melody", ["Bob", "Melody"])
    (100.0, 100.0)
    """
    import sacrebleu

    return float(sacrebleu.sentence_chrf(str(prediction), as_references(reference)).score)


def answer_words(text: str) -> int:
    """Length of an answer in words (CJK characters count one each).

    >>> answer_words("I am Melody."), answer_words("")
    (3, 0)
    """
    return len(tokens(text))


def score_answer(prediction: str, reference) -> dict:
    """Every per-example score of one answer (``reference``: a text or the list of accepted ones).

    >>> score_answer("I am Melody.", ["Melody", "I am Melody"])["exact_match"]
    1.0
    """
    return {"exact_match": exact_match(prediction, reference), "contains": contains(prediction, reference),
            "rouge_l": rouge_l(prediction, reference),
            "bleu": bleu(prediction, reference), "chrf": chrf(prediction, reference),
            "words": answer_words(prediction)}


def reference_streams(references: list) -> list[list]:
    """sacrebleu's multi-reference layout: stream k holds every example's k-th reference, None where an
    example has fewer (sacrebleu skips those).

    >>> reference_streams(["a", ["b", "c"]])
    [['a', 'b'], [None, 'c']]
    """
    refs = [as_references(r) for r in references]
    width = max((len(r) for r in refs), default=1)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


def corpus_scores(predictions: list[str], references: list) -> dict:
    """Means of the per-example scores, except BLEU and chrF, which are corpus-level as usual
    (n-gram counts pooled over all answers, which is steadier than averaging sentence scores).
    Each reference is a text or a list of accepted ones.

    >>> s = corpus_scores(["I am Melody", "Paris"], ["I am Melody", "Rome"])
    >>> s["exact_match"], s["rouge_l"], s["n"]
    (0.5, 0.5, 2)
    """
    import sacrebleu

    n = len(predictions)
    if n == 0:
        return {"n": 0, **{k: None for k in METRICS}}
    each = [score_answer(p, r) for p, r in zip(predictions, references)]
    refs = reference_streams(references)
    preds = [str(p) for p in predictions]
    return {"n": n, "exact_match": _mean(e["exact_match"] for e in each),
            "contains": _mean(e["contains"] for e in each),
            "rouge_l": _mean(e["rouge_l"] for e in each),
            "bleu": float(sacrebleu.corpus_bleu(preds, refs).score),
            "chrf": float(sacrebleu.corpus_chrf(preds, refs).score),
            "words": _mean(e["words"] for e in each)}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


# ---- is the difference real? ---------------------------------------------------------------------

@dataclass
class PairedTest:
    n: int              # examples compared
    mean_diff: float    # mean of (tuned - base); for "lower is better" scores, of (base - tuned)
    low: float          # 95% paired-bootstrap interval of mean_diff
    high: float
    wins: int           # examples where tuned is better
    losses: int         # ... worse
    ties: int
    p_value: float      # exact two-sided sign test over the non-tied pairs
    significant: bool   # p_value < alpha and the interval excludes 0
    better: str         # "tuned", "base" or "neither"

    def to_dict(self) -> dict:
        return asdict(self)


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test: the chance of a split at least this lopsided if neither model is better.

    >>> sign_test_p(8, 0)   # 2 * (1/2)^8
    0.0078125
    >>> sign_test_p(5, 3)   # 2 * (C(8,5)+C(8,6)+C(8,7)+C(8,8)) / 2^8 = 2 * 93/256
    0.7265625
    >>> sign_test_p(0, 0)
    1.0
    """
    n = wins + losses
    if n == 0:
        return 1.0
    k = max(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_test(base: list[float], tuned: list[float], *, higher_is_better: bool = True, alpha: float = 0.05,
                resamples: int = 2000, seed: int = 0) -> PairedTest:
    """Is tuned better than base on these examples by more than chance would give?

    Why paired: both models answer the same questions, so per-question differences remove how hard
    each question is, which dominates the spread. Why two checks: the exact sign test is valid at
    any n (studio test sets are often 10-50 questions, where a t-test's normality assumption fails
    for 0/1 scores like exact match and bootstrap intervals come out too narrow), but it ignores
    how big each win is; the paired bootstrap interval says how big the gap is. "Significant" needs
    both, which keeps the verdict conservative at small n.

    >>> t = paired_test([0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1])
    >>> t.mean_diff, t.low, t.high, t.wins, t.p_value, t.significant, t.better
    (1.0, 1.0, 1.0, 8, 0.0078125, True, 'tuned')
    >>> paired_test([1, 0, 1], [0, 1, 1]).better
    'neither'
    """
    if len(base) != len(tuned):
        raise ValueError(f"paired scores need the same length, got {len(base)} and {len(tuned)}")
    sign = 1.0 if higher_is_better else -1.0
    diffs = [sign * (float(t) - float(b)) for b, t in zip(base, tuned)
             if not (_nan(b) or _nan(t))]
    n = len(diffs)
    if n == 0:
        return PairedTest(0, float("nan"), float("nan"), float("nan"), 0, 0, 0, 1.0, False, "neither")
    wins = sum(d > 1e-12 for d in diffs)
    losses = sum(d < -1e-12 for d in diffs)
    mean_diff = sum(diffs) / n
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(resamples))
    low, high = means[int(resamples * alpha / 2)], means[min(resamples - 1, int(resamples * (1 - alpha / 2)))]
    p = sign_test_p(wins, losses)
    significant = p < alpha and (low > 0 or high < 0)
    better = ("tuned" if mean_diff > 0 else "base") if significant else "neither"
    return PairedTest(n, mean_diff, low, high, wins, losses, n - wins - losses, p, significant, better)


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))
