"""Issue 12 item 10: one language at a time. What the engine writes in English (status lines, the
memory estimate, errors) reaches a Chinese page in Chinese; gradio's own texts follow the page."""

from __future__ import annotations

import re

from tunesmith.app.callbacks import method_cb
from tunesmith.app.css import GRADIO_TEXTS, head_script
from tunesmith.app.engine_text import translate
from tunesmith.app.registry import error_html
from tunesmith.app.render_train import samples_html
from tunesmith.core.errors import UserError

ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")


def test_memory_breakdown_and_summary_in_chinese():
    est = {"breakdown": {"weights": 2**30, "optimizer": 2**29}, "total": 3 * 2**29,
           "setup": "LlamaForCausalLM (134.5 M params), LoRA r=16, bf16, batch 4 x 256 tokens, gradient "
                    "checkpointing off, 1 GPU",
           "notes": ["packing is off: the estimate assumes every sequence is padded to max_length (worst case)",
                     "ZeRO-2 splits the optimizer, gradients over 2 GPUs"]}
    html = method_cb.memory_html(est, 8, "zh")
    assert "权重" in html and "优化器状态" in html and "激活值" in html
    assert "批大小 4 × 256 token，梯度检查点关，1 块 GPU" in html
    assert "未开启打包" in html and "ZeRO-2 把优化器状态、梯度分摊到 2 块 GPU" in html
    visible = re.sub(r"<[^>]+>", " ", html)
    leftovers = set(ENGLISH_WORD.findall(visible)) - {"LlamaForCausalLM", "LoRA", "bf16", "token", "GPU", "ZeRO", "logits"}
    assert not leftovers, leftovers
    assert "weights" in method_cb.memory_html(est, 8, "en")


def test_engine_status_lines_and_errors_in_chinese():
    assert translate("Stopped at step 6; resume from checkpoint-6.", "zh") == "已在第 6 步停止；可从 checkpoint-6 继续。"
    assert translate("Stop requested: saving a checkpoint at the next step.", "zh") == "已请求停止：下一步结束时保存检查点。"
    html = error_html(UserError("Stop requested: saving a checkpoint at the next step.", ""), "zh")
    assert "<b>错误：</b>" in html and "已请求停止" in html
    assert "训练前（第 0 步）" in samples_html([{"step": 0, "when": "before", "prompt": "p", "answer": "a"}], lang="zh")


def test_gradio_own_texts_follow_the_page_language():
    script = head_script("zh")
    assert 'dataset.tsLang = "zh"' in script and GRADIO_TEXTS["zh"]["Drop File Here"] in script
    assert '"将文件拖放到此处": "Drop File Here"' in script  # a Chinese browser on an English page


def test_fit_changes_in_chinese(monkeypatch):
    from tunesmith.core.presets import load_config

    monkeypatch.setattr(method_cb, "detected_gpu_count", lambda: 1)
    from tunesmith.app.form import values_from_config

    values = {**values_from_config(load_config("llama2_7b_full_alpaca_e3")), "top/lang": "zh", "method/gpu_gb": "8"}
    status = method_cb.fit(values)["method/status"]
    assert "全参数微调 → LoRA" in status and "GPU 数 8 → 1" in status and "1 块 GPU × 8 GB" in status
    assert "full fine-tune" not in status
