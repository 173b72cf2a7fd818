"""HTML the tabs show: highlighted preview, statistics, memory bar, progress and failures."""

from __future__ import annotations

from tunesmith.app.callbacks.method_cb import memory_html
from tunesmith.app.render_data import bin_lengths, facts_html, histogram_frame, preview_html, stats_html
from tunesmith.app.render_train import failure_html, progress_html, run_choice, samples_html


def test_preview_highlights_supervised_and_greys_masked_tokens():
    sample = {"index": 4, "conversation": [{"system": "Be kind.", "input": "Who are you?", "output": "I am <Bot>."}],
              "segments": [("<|im_start|>user\nWho are you?", False), ("I am <Bot>.", True), ("\n", False)]}
    html = preview_html([sample])
    assert '<span class="ts-sup">I am &lt;Bot&gt;.</span>' in html
    assert '<span class="ts-masked">&lt;|im_start|&gt;user\nWho are you?</span>' in html
    assert "#4" in html and "<b>system</b> Be kind." in html and "<b>assistant</b> I am &lt;Bot&gt;." in html


def test_stats_and_histogram():
    stats = {"rows": 10, "kept": 8, "dropped": {"empty output": 2}, "lengths": [10, 20, 30, 40, 200, 5, 7, 9],
             "truncated_share": 0.125, "supervised_share": 0.4}
    html = stats_html(stats)
    for needle in ("<td>rows</td><td>10</td>", "<td>kept</td><td>8</td>", "empty output", "12.5%", "40.0%",
                   "5 / 20 / 200"):
        assert needle in html, needle
    frame = histogram_frame(stats, bins=4)
    assert frame["rows"].sum() == 8 and list(frame.columns) == ["tokens", "rows", "order"]
    given = histogram_frame({"histogram": {"edges": [0, 64, 128], "counts": [3, 1]}})
    assert given["tokens"].tolist() == ["0-64", "64-128"] and given["rows"].tolist() == [3, 1]
    assert bin_lengths([]) == ([0, 1], [0])


def test_facts_table_orders_and_humanises():
    html = facts_html({"params": 134515008, "layers": 30, "family": "llama", "name": "x"})
    assert html.index("family") < html.index("params") < html.index("layers")
    assert "134.5 M" in html and ">name<" not in html


def test_memory_bar_against_gpu():
    est = {"breakdown": {"weights": 6 * 2**30, "optimizer": 4 * 2**30}, "total": 10 * 2**30, "notes": ["n1"]}
    html = memory_html(est, 8, "en")
    assert 'data-fits="false"' in html and "does NOT fit in 8 GB" in html and "10.00 GB" in html and "n1" in html
    assert 'data-fits="true"' in memory_html(est, 24, "zh") and "可以放进 24 GB" in memory_html(est, 24, "zh")


def test_progress_bar_with_eta():
    html = progress_html({"state": "running", "message": "training"},
                         {"step": 5, "total_steps": 20, "elapsed_s": 65, "eta_s": 195}, "en", "run-a")
    assert 'data-frac="0.2500"' in html and "step 5 / 20" in html and "about 3:15 left" in html
    assert "Running" in html and "run-a" in html
    assert 'data-frac="1.0000"' in progress_html({"state": "finished"}, None, "en")


def test_failure_shows_error_advice_and_log_lines():
    status = {"state": "failed", "error": "Out of memory while training.", "advice": "Switch to QLoRA.",
              "log": ["Traceback (most recent call last):", "torch.OutOfMemoryError: CUDA out of memory"]}
    html = failure_html(status, [], "en")
    assert "Out of memory while training." in html and "Switch to QLoRA." in html
    assert "torch.OutOfMemoryError" in html and "What to try" in html
    assert failure_html({"state": "running"}, ["x"], "en") == ""


def test_samples_and_run_choice():
    html = samples_html([{"step": 10, "prompt": "Who are you?", "answer": "I am Tunesmith."},
                         {"step": 20, "prompt": "Who are you?", "answer": "<b>"}])
    assert html.index("step 20") < html.index("step 10") and "&lt;b&gt;" in html
    assert run_choice({"name": "r", "state": "finished", "run_dir": "/r"}) == ("r · finished", "/r")


def test_log_tail_hides_known_noise_but_never_errors():
    # issue 12 item 8: what a CPU LoRA run prints that alarms and means nothing
    from tunesmith.app.render_train import useful_log_lines

    lines = ["Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. Please make "
             "sure you already `pip install kernels` and the kernels >= 0.11.1",
             "/x/modeling_utils.py:3303: FutureWarning: `is_gradient_checkpointing` is deprecated",
             "  warnings.warn(",
             "[2026-12-01 21:26:15,176] [WARNING] [real_accelerator.py:213:get_accelerator] Setting accelerator to "
             "CPU. If you have GPU or other accelerator, we were unable to detect it.",
             "Loading weights: 100%|██████████| 272/272 [00:00<00:00, 8611.17it/s]",
             "[tunesmith] step 1/12 loss 3.2765",
             "RuntimeError: CUDA error: device-side assert",
             "Traceback (most recent call last):", "  File \"x.py\", line 1", "FutureWarning inside a traceback"]
    kept, hidden = useful_log_lines(lines)
    assert hidden == 5
    assert kept == lines[5:]


def test_stats_table_in_chinese():
    stats = {"rows": 10, "kept": 8, "dropped": {"empty output": 2}, "drop_examples": {"empty output": 3},
             "lengths": [10, 20, 30], "truncated_share": 0.0, "supervised_share": 0.4, "packed": True,
             "sequences": 2, "packing_efficiency": 0.9, "map_fn": "openai", "template": "chat_template"}
    html = stats_html(stats, "zh")
    for needle in ("<td>行数</td><td>10</td>", "<td>保留</td><td>8</td>", "<td>丢弃</td><td>2</td>",
                   "（首个：第 3 行）", "<td>token 总数</td><td>60</td>", "<td>行格式</td><td>openai</td>",
                   "<td>打包后的序列</td><td>2（90.0% 填满）</td>"):
        assert needle in html, needle


def test_drop_reasons_are_shown_in_the_page_language():
    reasons = {"empty answer": 2, "unknown role 'bot' in 'messages'": 1, "messages[0].content is a list, not text": 1,
               "row could not be mapped (KeyError)": 1, "something the table does not know": 1}
    stats = {"rows": 10, "kept": 4, "dropped": reasons, "drop_examples": {}, "lengths": [10]}
    zh = stats_html(stats, "zh")
    for needle in ("· 回答为空</td><td>2", "· &#x27;messages&#x27; 中有未知角色 &#x27;bot&#x27;</td>",
                   "· messages[0].content 是 a list，不是文本", "· 这一行无法映射（KeyError）",
                   "· something the table does not know"):  # an unknown reason stays as written, never hidden
        assert needle in zh, (needle, zh)
    assert "empty answer" not in zh and "· empty answer</td><td>2" in stats_html(stats, "en")


def test_every_fixed_drop_reason_of_the_engine_has_a_translation():
    """The plain-string reasons the data pipeline gives (RowSkipped("...") and the encoder's) are all known
    to the GUI's translator, so a new one cannot slip into the Chinese page in English."""
    import ast
    from pathlib import Path

    from tunesmith.app.engine_text import translate

    found = set()
    for path in (Path(__file__).resolve().parent.parent / "tunesmith" / "core" / "data").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "RowSkipped" and node.args:
                arg = node.args[0]
                values = [arg] if isinstance(arg, ast.Constant) else \
                    [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else []
                found |= {v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)}
    found |= {"no supervised token left after truncation to max_length",
              "no supervised token (every answer has loss turned off)"}
    assert len(found) >= 15, found
    untranslated = sorted(r for r in found if translate(r, "zh") == r)
    assert not untranslated, untranslated
