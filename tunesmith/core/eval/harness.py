"""The same test examples as an lm-evaluation-harness task, run on the models already loaded.

Optional: only when ``lm_eval`` is importable (``pip install lm-eval``). The task is defined over a
local JSONL file written next to the results (``dataset_path: json`` + ``data_files``), so nothing is
downloaded from the hub, and the harness scores the same prompts (built with the run's template)
against the same accepted references. Its numbers are a cross-check of ours from an independent
implementation, stored in ``summary.json["lm_eval"]``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

TASK_FILE = "lm_eval_task.jsonl"
CLAUSE_STOPS = ["\n", ".", ",", "!", "?", "。", "，", "！", "？"]


def available() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


def write_task_data(path: Path, prompts: list[str], examples) -> Path:
    """One JSON line per example: the full prompt text, the reference and every accepted reference."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for prompt, ex in zip(prompts, examples):
            fh.write(json.dumps({"prompt": prompt, "target": ex.reference,
                                 "references": list(ex.references or [ex.reference])}, ensure_ascii=False) + "\n")
    return path


def task_config(name: str, data_file: Path, *, stop_words: list[str], max_new_tokens: int) -> dict:
    """A generate_until task over ``data_file``: greedy answers cut at the first clause mark, exact
    match against any reference.

    >>> cfg = task_config("t", Path("/x/d.jsonl"), stop_words=["<|im_end|>"], max_new_tokens=8)
    >>> cfg["dataset_path"], cfg["dataset_kwargs"], cfg["doc_to_target"]
    ('json', {'data_files': {'test': '/x/d.jsonl'}}, '{{references}}')
    """
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        # A list target makes the harness score each answer against every reference and keep the best.
        "doc_to_target": "{{references}}",
        "target_delimiter": "",
        # The short-answer convention of the harness's own generative QA tasks (TriviaQA, NQ-open): the
        # answer ends at the first line break or clause mark, like our exact match's leading clause.
        "generation_kwargs": {"until": [*stop_words, *CLAUSE_STOPS], "max_gen_toks": int(max_new_tokens),
                              "do_sample": False},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                         "ignore_case": True, "ignore_punctuation": True,
                         "regexes_to_ignore": [r"^\s+", r"\s+$"]}],
        "metadata": {"version": 1},
    }


def run_task(model, tokenizer, config: dict, *, batch_size: int) -> dict:
    """simple_evaluate on an already loaded model -> {metric: value} of the one task."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    out = simple_evaluate(model=lm, tasks=[config], log_samples=False, bootstrap_iters=0, verbosity="ERROR")
    results = out["results"][config["task"]]
    return {k.split(",")[0]: v for k, v in results.items() if k != "alias" and "_stderr" not in k
            and isinstance(v, (int, float))}
