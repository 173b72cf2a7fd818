"""The results of an evaluation: summary.json, examples.jsonl (biggest wins and losses first) and the
small table printed by the CLI. No torch; the GUI reads these files back with :func:`read_results`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

SUMMARY = "summary.json"
EXAMPLES = "examples.jsonl"
REQUEST = "request.json"
TESTED = ("loss", "exact_match", "contains", "rouge_l", "bleu", "chrf")  # per-example scores compared pairwise
LABELS = {"loss": "loss", "perplexity": "perplexity", "exact_match": "exact match",
          "contains": "contains reference", "rouge_l": "ROUGE-L",
          "bleu": "BLEU", "chrf": "chrF", "words": "answer words"}
PRIMARY = "rouge_l"  # orders the examples: graded, unlike exact match, and defined for any answer


def example_row(ex) -> dict:
    """One line of examples.jsonl from a runner Example (both sides scored)."""
    base, tuned = ex.scores["base"], ex.scores["tuned"]
    delta = {k: _sub(tuned.get(k), base.get(k)) for k in TESTED}
    gain = delta[PRIMARY] or 0.0
    return {"index": ex.index, "prompt": ex.prompt, "messages": ex.messages, "reference": ex.reference,
            "references": list(getattr(ex, "references", None) or [ex.reference]),
            "base": base, "tuned": tuned, "delta": delta, "gain": gain,
            "outcome": "win" if gain > 1e-9 else "loss" if gain < -1e-9 else "tie"}


def _sub(a, b):
    return None if a is None or b is None else a - b


def order_examples(rows: list[dict]) -> list[dict]:
    """Biggest differences first (wins and losses alike), then by how much the loss changed.

    >>> rows = [{"index": 0, "gain": 0.1, "delta": {"loss": -0.5}}, {"index": 1, "gain": -0.8, "delta": {"loss": 1}},
    ...         {"index": 2, "gain": 0.8, "delta": {"loss": -2}}, {"index": 3, "gain": 0.0, "delta": {"loss": 0.1}}]
    >>> [r["index"] for r in order_examples(rows)]
    [2, 1, 0, 3]
    """
    return sorted(rows, key=lambda r: (-abs(r.get("gain") or 0.0), -abs((r.get("delta") or {}).get("loss") or 0.0),
                                       r.get("index", 0)))


def best_and_worst(rows: list[dict], k: int = 3) -> tuple[list[dict], list[dict]]:
    """The ``k`` biggest wins of the tuned model and its ``k`` biggest losses.

    >>> rows = [{"index": i, "gain": g, "outcome": o} for i, g, o in [(0, .5, "win"), (1, -.2, "loss"), (2, 0, "tie")]]
    >>> [[r["index"] for r in part] for part in best_and_worst(rows)]
    [[0], [1]]
    """
    wins = sorted((r for r in rows if r.get("outcome") == "win"), key=lambda r: -r["gain"])[:k]
    losses = sorted((r for r in rows if r.get("outcome") == "loss"), key=lambda r: r["gain"])[:k]
    return wins, losses


def build_summary(plan, examples, totals: dict, *, template: str, map_fn: str, dropped: dict,
                  seconds: float) -> tuple[dict, list[dict]]:
    from tunesmith.core.eval.metrics import HIGHER_IS_BETTER, paired_test

    rows = order_examples([example_row(ex) for ex in examples])
    harness = {k: totals[k].pop("lm_eval", None) for k in ("base", "tuned")}
    tests = {}
    for key in TESTED:
        base = [r["base"].get(key) for r in rows]
        tuned = [r["tuned"].get(key) for r in rows]
        base = [math.nan if v is None else v for v in base]
        tuned = [math.nan if v is None else v for v in tuned]
        tests[key] = paired_test(base, tuned, higher_is_better=HIGHER_IS_BETTER[key]).to_dict()
    req = plan.request
    summary = {
        "name": req.name, "src": req.src, "data": plan.data_label, "held_out": not req.data,
        "n": len(rows), "dropped": dropped, "template": template, "map_fn": map_fn,
        "base": totals["base"], "tuned": totals["tuned"], "tests": tests,
        "wins": sum(r["outcome"] == "win" for r in rows), "losses": sum(r["outcome"] == "loss" for r in rows),
        "ties": sum(r["outcome"] == "tie" for r in rows),
        "settings": {"greedy": True, "max_new_tokens": req.max_new_tokens, "batch_size": req.batch_size,
                     "limit": req.limit, "against": req.against or None},
        "lm_eval": lm_eval_note(harness), "seconds": round(seconds, 2), "finished_at": time.time(),
        "out_dir": str(plan.out_dir),
    }
    summary["verdict"] = verdict(summary)
    return summary, rows


def lm_eval_note(harness: dict) -> dict:
    """The harness's numbers per side (``{"base": {...}, "tuned": {...}}`` from the runner), or why there
    are none: lm-evaluation-harness is optional, so its absence is recorded instead of failing.

    >>> lm_eval_note({"base": None, "tuned": None})["skipped"]  # doctest: +SKIP
    'lm-eval is not installed (pip install lm-eval adds the harness cross-check)'
    """
    import importlib.util

    if harness.get("base") is None or harness.get("tuned") is None:
        if importlib.util.find_spec("lm_eval") is None:
            return {"skipped": "lm-eval is not installed (pip install lm-eval adds the harness cross-check)"}
        return {"skipped": "the harness cross-check was switched off (--no-lm-eval)"}
    from importlib.metadata import version

    return {"version": version("lm_eval"), "output_type": "generate_until",
            "metric": "exact_match (ignore_case, ignore_punctuation; best over the accepted references)",
            "base": harness["base"], "tuned": harness["tuned"]}


def _fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key in ("exact_match", "contains", "rouge_l"):
        return f"{value:.3f}"
    if key in ("bleu", "chrf", "words"):
        return f"{value:.1f}"
    return f"{value:.4f}" if key == "loss" else f"{value:.2f}"


def _signed(key: str, value) -> str:
    text = _fmt(key, value)
    return text if text == "-" or text.startswith("-") else "+" + text


def noise_text(test: dict | None) -> str:
    """'yes (7 better, 1 worse, p=0.070)' style verdict on one score.

    >>> noise_text({"significant": True, "wins": 8, "losses": 0, "ties": 0, "p_value": 0.0078125, "n": 8})
    'yes (8 better, 0 worse, 0 same; p=0.008)'
    """
    if not test or not test.get("n"):
        return "-"
    head = "yes" if test["significant"] else "no"
    return f"{head} ({test['wins']} better, {test['losses']} worse, {test['ties']} same; p={test['p_value']:.3f})"


def table_rows(summary: dict) -> list[list[str]]:
    """[score, base, tuned, difference, larger than noise?] for the CLI table and the GUI frame."""
    out = []
    for key in ("loss", "perplexity", "exact_match", "contains", "rouge_l", "bleu", "chrf", "words"):
        b, t = summary["base"].get(key), summary["tuned"].get(key)
        diff = None if b is None or t is None or math.isinf(b) or math.isinf(t) else t - b
        out.append([LABELS[key], _fmt(key, b), _fmt(key, t), _signed(key, diff), noise_text(summary["tests"].get(key))])
    return out


def format_table(summary: dict) -> str:
    """The summary as a small aligned text table."""
    head = ["score", "base", "tuned", "tuned - base", "larger than the noise?"]
    rows = [head, *table_rows(summary)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"evaluation '{summary['name']}': {summary['n']} example(s) from {summary['data']}",
             f"base:  {summary['base'].get('label')}", f"tuned: {summary['tuned'].get('label')}", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines += ["", "(loss and perplexity: lower is better; answers are greedy; BLEU and chrF are corpus-level)",
              summary.get("verdict", "")]
    if summary.get("dropped"):
        lines.append("dropped rows: " + ", ".join(f"{n} {r}" for r, n in summary["dropped"].items()))
    return "\n".join(lines)


def verdict(summary: dict) -> str:
    """One sentence a non-expert can act on."""
    tests = summary["tests"]
    better = [LABELS[k] for k in TESTED if tests[k]["better"] == "tuned"]
    worse = [LABELS[k] for k in TESTED if tests[k]["better"] == "base"]
    where = "held-out examples" if summary.get("held_out") else "test examples"
    head = f"On {summary['n']} {where}, "
    if not better and not worse:
        return head + "no difference between base and tuned is larger than the noise (more examples may tell)."
    parts = []
    if better:
        parts.append("the tuned model is better at " + ", ".join(better))
    if worse:
        parts.append(("and " if better else "the tuned model is ") + "worse at " + ", ".join(worse))
    return head + " ".join(parts) + " (larger than the noise)."


def write_results(out_dir: Path, summary: dict, rows: list[dict]) -> None:
    """Atomic writes (the GUI polls these files while they may be replaced)."""
    from tunesmith.core.files import atomic_write_text as _atomic_write
    from tunesmith.core.train.rundir import _json_default

    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / EXAMPLES, "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n"
                                             for r in rows))
    _atomic_write(out_dir / SUMMARY, json.dumps(summary, indent=1, ensure_ascii=False, default=_json_default))


def read_results(out_dir: str | Path) -> tuple[dict | None, list[dict]]:
    """(summary or None, example rows) of an evaluation folder."""
    from tunesmith.core.train.rundir import _read_jsonl

    out_dir = Path(out_dir)
    try:
        summary = json.loads((out_dir / SUMMARY).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None, []
    return summary, _read_jsonl(out_dir / EXAMPLES, 0)


def list_evaluations(run_dir: str | Path) -> list[dict]:
    """Finished evaluations of a run, newest first: [{name, out_dir, summary}]."""
    root = Path(run_dir) / "eval"
    found = []
    if root.is_dir():
        for child in root.iterdir():
            summary, _ = read_results(child) if child.is_dir() else (None, [])
            if summary is not None:
                found.append({"name": child.name, "out_dir": str(child), "summary": summary})
    found.sort(key=lambda e: e["summary"].get("finished_at") or 0, reverse=True)
    return found
