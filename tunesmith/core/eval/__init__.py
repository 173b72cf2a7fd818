"""Evaluate a tuned model against its base on held-out data (docs/evaluate.md).

metrics.py: reference-based scores and the paired significance test (no torch);
runner.py: loss / perplexity and generated answers for base and tuned;
report.py: summary and per-example files, the printed table; launch.py: the evaluation as a
stoppable subprocess with status.json, like a training run.
"""
