"""Train tab: "Evaluate on a test set" (base vs tuned on a file or the held-out split, as a stoppable
subprocess) and "Compare runs" (loss curves overlaid, the config fields that differ, evaluation
summaries). Plain functions: ``values`` in, ``{id: value | Update}`` out (no gradio).
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from tunesmith.app.callbacks.common import check_run_folder, check_source, lang_of
from tunesmith.app.locales import text
from tunesmith.app.registry import Update, ok_html
from tunesmith.app.settings import AppSettings
from tunesmith.core.errors import UserError

EVAL_OUTPUTS = ["eval/progress", "eval/failure", "eval/summary", "eval/best", "eval/worst", "eval/examples",
                "eval/seen"]
EXAMPLE_COLUMNS = ["#", "outcome", "prompt", "reference", "base answer", "tuned answer", "ROUGE-L base",
                   "ROUGE-L tuned", "loss base", "loss tuned"]
DIFF_COLUMNS_HEAD = ["field"]
# Fields that name a run rather than configure it: they differ between any two runs, so listing
# them would bury the settings that really changed.
IDENTITY_FIELDS = {"output.run_dir", "output.name", "training.resume_from"}
OVERLAY_SERIES = (("loss", "loss"), ("eval_loss", "eval loss"))
EVALS_COLUMNS = ["run", "evaluation", "examples", "loss base", "loss tuned", "ROUGE-L base", "ROUGE-L tuned",
                 "exact match base", "exact match tuned", "verdict"]


# ---- runs -----------------------------------------------------------------------------------------

def run_choices(settings: AppSettings) -> list[tuple[str, str]]:
    from tunesmith.app.callbacks.train_cb import gui_runs
    from tunesmith.app.render_train import run_choice

    return [run_choice(r) for r in gui_runs(settings)]


def refresh(values: dict, settings: AppSettings) -> dict:
    """Both run pickers (evaluate: one run; compare: several), newest first."""
    choices = run_choices(settings)
    return {"eval/run": Update(choices=choices), "compare/runs": Update(choices=choices)}


def _eval_dir(current: str, settings: AppSettings) -> Path:
    """The hidden box comes from the browser: it must be RUN/eval/NAME of a run of this app."""
    path = Path(current).expanduser().resolve()
    if path.parent.name != "eval":
        raise UserError(f"{current} is not an evaluation folder.", "Start an evaluation from this tab.")
    check_run_folder(str(path.parent.parent), settings)
    return path


# ---- evaluate ------------------------------------------------------------------------------------

def eval_command(req) -> str:
    """The same evaluation from a terminal.

    >>> from tunesmith.core.eval.runner import EvalRequest
    >>> eval_command(EvalRequest("/runs/r1", data="/d/test.json", limit=20, max_new_tokens=64))
    'python -m tunesmith evaluate /runs/r1 --data /d/test.json --limit 20 --max-new-tokens 64'
    """
    import shlex

    parts = ["python", "-m", "tunesmith", "evaluate", req.src]
    if req.data:
        parts += ["--data", req.data]
    if req.limit:
        parts += ["--limit", str(req.limit)]
    if req.name:
        parts += ["--name", req.name]
    if req.max_new_tokens != 128:
        parts += ["--max-new-tokens", str(req.max_new_tokens)]
    return " ".join(shlex.quote(p) for p in parts)


def _whole(values: dict, key: str, default: int, lang: str, minimum: int) -> int:
    raw = values.get(key)
    if raw in (None, ""):
        return default
    try:
        number = float(raw)
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer() or number < minimum:
        raise UserError(text("eval_bad_number", lang, what=key.split("/")[-1], value=raw, minimum=minimum),
                        text("eval_bad_number_fix", lang))
    return int(number)


def start(values: dict, settings: AppSettings) -> dict:
    """Start an evaluation of the picked run; the timer then shows its progress and results."""
    from tunesmith.core.eval.launch import start as launch_eval
    from tunesmith.core.eval.runner import EvalRequest

    lang = lang_of(values)
    chosen = values.get("eval/run")
    if not chosen:
        raise UserError(text("eval_no_run", lang), text("eval_no_run_fix", lang))
    run = check_run_folder(chosen, settings)
    data = (values.get("eval/data") or "").strip()
    if data:
        data = check_source(data, settings, "test file")
    req = EvalRequest(str(run), data=data, limit=_whole(values, "eval/limit", 0, lang, 0),
                      max_new_tokens=_whole(values, "eval/max_new_tokens", 128, lang, 1),
                      name=(values.get("eval/name") or "").strip())
    handle = launch_eval(req)
    return {"eval/current": str(handle.run_dir), "eval/seen": "", "eval/cmd": eval_command(req),
            "eval/status": ok_html(text("eval_started", lang, name=handle.run_dir.name, run=run.name)),
            "eval/summary": "", "eval/best": _frame([]), "eval/worst": _frame([]), "eval/examples": _frame([]),
            "eval/failure": ""}


def stop(values: dict, settings: AppSettings) -> dict:
    from tunesmith.core.train.launcher import attach

    lang = lang_of(values)
    current = values.get("eval/current")
    if not current:
        raise UserError(text("eval_none", lang), text("eval_no_run_fix", lang))
    done = attach(_eval_dir(current, settings)).stop()
    return {"eval/status": ok_html(text(f"eval_stop_{done.replace(' ', '_')}", lang))}


def progress_html(status: dict, lang: str, name: str) -> str:
    state = status.get("state") or "unknown"
    frac = 1.0 if state == "finished" else float(status.get("progress") or 0.0)
    cls = {"finished": "ok", "stopped": "warn", "failed": "bad"}.get(state, "run")
    label = text(f"state_{state}", lang) if state in ("starting", "running", "stopping", "finished", "stopped",
                                                      "failed") else state
    message = "" if state == "failed" else str(status.get("message") or "")
    return (f'<div class="ts-progress ts-{cls}" data-state="{escape(state)}" data-frac="{frac:.4f}">'
            f'<div class="ts-progress-head"><b>{escape(label)}</b> {escape(name)} · {frac:.0%}</div>'
            f'<div class="ts-bar"><div class="ts-fill" style="width:{frac * 100:.1f}%"></div></div>'
            f'<div class="ts-progress-msg">{escape(message)}</div></div>')


def poll(values: dict, settings: AppSettings) -> dict:
    """Progress while it runs; once finished (first time seen), the summary and the example tables."""
    from tunesmith.app.render_train import failure_html
    from tunesmith.core.eval.report import read_results
    from tunesmith.core.train.launcher import attach

    current = values.get("eval/current")
    if not current:
        return {}
    lang = lang_of(values)
    path = _eval_dir(current, settings)
    status = attach(path).status()
    state = status.get("state") or "unknown"
    out = {"eval/progress": progress_html(status, lang, path.name),
           "eval/failure": failure_html(status, [], lang)}
    seen = f"{state}:{status.get('updated_at')}"
    if state == "finished" and values.get("eval/seen") != seen:
        summary, rows = read_results(path)
        if summary is not None:
            out.update(results(summary, rows, lang))
            out["eval/seen"] = seen
    return out


def results(summary: dict, rows: list[dict], lang: str) -> dict:
    """The summary table and the best / worst / all examples."""
    from tunesmith.core.eval.report import best_and_worst

    best, worst = best_and_worst(rows, k=5)
    return {"eval/summary": summary_html(summary, lang), "eval/best": _frame(best, lang),
            "eval/worst": _frame(worst, lang), "eval/examples": _frame(rows, lang)}


def verdict_text(summary: dict, lang: str) -> str:
    """The one-line answer, in the page's language.

    >>> s = {"n": 8, "held_out": False, "tests": {"loss": {"better": "tuned"}, "rouge_l": {"better": "neither"}}}
    >>> verdict_text(s, "en")
    'On 8 test examples the tuned model is better at: loss.'
    """
    from tunesmith.core.eval.report import LABELS

    tests = summary.get("tests") or {}
    better = [LABELS.get(k, k) for k, t in tests.items() if t.get("better") == "tuned"]
    worse = [LABELS.get(k, k) for k, t in tests.items() if t.get("better") == "base"]
    where = text("eval_held_out" if summary.get("held_out") else "eval_test_set", lang)
    parts = []
    if better:
        parts.append(text("eval_better", lang, n=summary["n"], where=where, what=", ".join(better)))
    if worse:
        parts.append(text("eval_worse", lang, n=summary["n"], where=where, what=", ".join(worse)))
    return " ".join(parts) or text("eval_no_difference", lang, n=summary["n"], where=where)


def summary_html(summary: dict, lang: str) -> str:
    from tunesmith.core.eval.report import table_rows

    head = [text("eval_col_score", lang), text("eval_col_base", lang), text("eval_col_tuned", lang),
            text("eval_col_diff", lang), text("eval_col_noise", lang)]
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(summary))
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    who = (f'<div class="ts-muted">{escape(text("eval_sides", lang, base=summary["base"].get("label", ""), tuned=summary["tuned"].get("label", ""), data=summary.get("data", "")))}</div>')
    verdict = verdict_text(summary, lang)
    return (f'<div class="ts-eval-summary" data-n="{summary["n"]}"><div class="ts-eval-verdict"><b>{escape(verdict)}</b>'
            f'</div>{who}<table class="ts-table"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'
            f'<div class="ts-muted">{escape(text("eval_note", lang))}</div></div>')


def _num(value, digits: int = 3):
    return None if value is None else round(float(value), digits)


def _frame(rows: list[dict], lang: str = "en"):
    import pandas as pd

    records = [[r.get("index"), text(f"eval_outcome_{r.get('outcome', 'tie')}", lang), r.get("prompt", ""),
                r.get("reference", ""), r["base"].get("answer", ""), r["tuned"].get("answer", ""),
                _num(r["base"].get("rouge_l")), _num(r["tuned"].get("rouge_l")), _num(r["base"].get("loss")),
                _num(r["tuned"].get("loss"))] for r in rows]
    return pd.DataFrame.from_records(records, columns=EXAMPLE_COLUMNS)


# ---- compare runs --------------------------------------------------------------------------------

def _flat(d: dict, prefix: str = "") -> dict:
    """Nested config dict -> {"section.field": value}.

    >>> _flat({"training": {"learning_rate": 0.1}, "lora": {"r": 8}})
    {'training.learning_rate': 0.1, 'lora.r': 8}
    """
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and prefix == "":
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(configs: dict[str, dict]) -> list[list]:
    """[field, value in run 1, value in run 2, ...] for the fields whose values differ, in config order.

    >>> config_diff({"a": {"training": {"learning_rate": 1e-4, "seed": 1}, "output": {"name": "a"}},
    ...              "b": {"training": {"learning_rate": 2e-4, "seed": 1}, "output": {"name": "b"}}})
    [['training.learning_rate', '0.0001', '0.0002']]
    """
    flats = {name: _flat(cfg) for name, cfg in configs.items()}
    keys = list(dict.fromkeys(k for flat in flats.values() for k in flat))
    rows = []
    for key in keys:
        if key in IDENTITY_FIELDS:
            continue
        shown = [_show(flat.get(key, "—")) for flat in flats.values()]
        if len(set(shown)) > 1:
            rows.append([key, *shown])
    return rows


def _show(value) -> str:
    import json

    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def overlay_frame(metrics: dict[str, list[dict]]):
    """Loss and eval loss of every run in one long frame: series "<run> · loss", "<run> · eval loss".

    >>> f = overlay_frame({"a": [{"step": 1, "loss": 2.0}], "b": [{"step": 1, "loss": 3.0, "eval_loss": 3.5}]})
    >>> sorted(set(f["series"]))
    ['a · loss', 'b · eval loss', 'b · loss']
    """
    import pandas as pd

    from tunesmith.app.plots import COLUMNS, metric_points

    records = []
    for run, rows in metrics.items():
        for key, name in OVERLAY_SERIES:
            records += [(int(s) if float(s).is_integer() else s, v, f"{run} · {name}")
                        for s, v in metric_points(rows, key)]
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def evals_frame(evals: dict[str, list[dict]]):
    import pandas as pd

    records = []
    for run, found in evals.items():
        for e in found:
            s = e["summary"]
            records.append([run, e["name"], s.get("n"), _num(s["base"].get("loss"), 4),
                            _num(s["tuned"].get("loss"), 4), _num(s["base"].get("rouge_l")),
                            _num(s["tuned"].get("rouge_l")), _num(s["base"].get("exact_match")),
                            _num(s["tuned"].get("exact_match")), s.get("verdict", "")])
    return pd.DataFrame.from_records(records, columns=EVALS_COLUMNS)


def compare(values: dict, settings: AppSettings) -> dict:
    """Two or more runs side by side: overlaid loss curves, the config diff, their evaluations."""
    import pandas as pd

    from tunesmith.core.config import RunConfig
    from tunesmith.core.eval.report import list_evaluations
    from tunesmith.core.train.rundir import RunDir

    lang = lang_of(values)
    chosen = values.get("compare/runs") or []
    if isinstance(chosen, str):
        chosen = [chosen]
    chosen = list(dict.fromkeys(chosen))
    if len(chosen) < 2:
        raise UserError(text("compare_need_two", lang), text("compare_need_two_fix", lang))
    configs, metrics, evals = {}, {}, {}
    for item in chosen:
        path = check_run_folder(item, settings)
        rd = RunDir(path)
        if not rd.config_path.is_file():
            raise UserError(text("compare_no_config", lang, run=path.name), text("compare_need_two_fix", lang))
        configs[path.name] = RunConfig.load(rd.config_path).to_dict()
        metrics[path.name] = rd.read_metrics()
        evals[path.name] = list_evaluations(path)
    rows = config_diff(configs)
    diff = pd.DataFrame.from_records(rows, columns=[*DIFF_COLUMNS_HEAD, *configs])
    note = text("compare_same", lang) if not rows else text("compare_differ", lang, n=len(rows))
    return {"compare/plot": overlay_frame(metrics), "compare/diff": diff, "compare/evals": evals_frame(evals),
            "compare/status": ok_html(note)}
