"""End to end with the real trainer: a LoRA run on the tiny model -> convert -> plain PEFT, merge, chat."""

from __future__ import annotations

import pytest
from test_export_helpers import logits, sample_ids

# In-process training (tens of seconds each on CPU): the `slow` tier (make test), not make test-fast.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir):
    from tunesmith.core.train.launcher import run_here
    from toy import sft_rows, toy_config, write_json

    data = write_json(sft_rows(24), tmp_path_factory.mktemp("data") / "toy.json")
    run_dir = tmp_path_factory.mktemp("runs") / "lora"
    cfg = toy_config(tiny_model_dir, data, run_dir, ["training.max_steps=4", "training.save_steps=2",
                                                     "training.learning_rate=5e-3"])
    status = run_here(cfg)
    assert status["state"] == "finished", status
    return run_dir


def test_trained_run_converts_merges_and_chats(trained_run, tiny_model_dir, tokenizer, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunesmith.core.chat import ChatEngine, GenerationSettings
    from tunesmith.core.export import convert_to_hf, inspect_checkpoint, merge_adapter

    def base():
        return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()

    info = inspect_checkpoint(trained_run)
    assert info.kind == "adapter" and info.step == 4 and info.config.method.finetuning == "lora"
    out = convert_to_hf(trained_run, tmp_path / "adapter", dtype="fp32")
    ids = sample_ids(tokenizer)
    from_run = logits(PeftModel.from_pretrained(base(), str(info.path)).eval(), ids)
    converted = logits(PeftModel.from_pretrained(base(), str(out)).eval(), ids)
    assert (converted - from_run).abs().max().item() < 1e-6
    assert (logits(base(), ids) - from_run).abs().max().item() > 1e-4, "training changed the adapter"
    readme = (out / "README.md").read_text()
    assert "Final | step 4" in readme and "chat_template" in readme

    merged = merge_adapter(str(tiny_model_dir), out, tmp_path / "merged", dtype="fp32")
    merged_logits = logits(AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).eval(), ids)
    assert (merged_logits - from_run).abs().max().item() < 1e-4

    greedy = GenerationSettings(temperature=0, max_new_tokens=8)
    answers = [ChatEngine.load(src, adapter=adapter, settings=greedy).new_session().chat("Hello")
               for src, adapter in ((str(trained_run), None), (str(tiny_model_dir), str(out)), (str(merged), None))]
    assert answers[0] == answers[1] == answers[2] and answers[0].strip()
