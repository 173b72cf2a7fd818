"""DeepSpeed ZeRO-2/3 checkpoints (2 ranks under torchrun on CPU) consolidate into plain HF/PEFT folders.

Run as a script under torchrun, this file trains the tiny model for two steps with raw
``deepspeed.initialize`` (ZeRO-2 LoRA, ZeRO-3 LoRA, ZeRO-3 full) and saves checkpoints the way HF
Trainer does (``engine.save_checkpoint`` into checkpoint-N, plus the adapter/config files rank 0
writes), together with reference logits computed by the live engine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CASES = (("z2-lora", 2, "lora"), ("z3-lora", 3, "lora"), ("z3-full", 3, "full"))
IDS = [1, 500, 600, 700, 800, 900, 1000, 2]


def _make_checkpoints(tiny: str, out: str) -> None:
    import deepspeed
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    deepspeed.init_distributed(dist_backend="gloo")
    rank = int(os.environ["RANK"])
    ids = torch.tensor([IDS])
    for name, stage, method in CASES:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
        if method == "lora":
            model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                     task_type="CAUSAL_LM"))
        config = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
                  "zero_optimization": {"stage": stage}, "zero_allow_untested_optimizer": True,
                  "optimizer": {"type": "AdamW", "params": {"lr": 0.05, "torch_adam": True}}}
        engine, *_ = deepspeed.initialize(model=model, config=config,
                                          model_parameters=[p for p in model.parameters() if p.requires_grad])
        for _ in range(2):
            engine.backward(engine(input_ids=ids, labels=ids).loss)
            engine.step()
        with torch.no_grad():
            reference = engine(input_ids=ids).logits
        ckpt = Path(out) / name / "checkpoints" / "checkpoint-2"
        engine.save_checkpoint(str(ckpt))
        if rank == 0:
            torch.save(reference, Path(out) / f"{name}.logits.pt")
            if method == "full":
                engine.module.config.save_pretrained(str(ckpt))  # ZeRO-3 without gathered 16-bit weights
            elif stage == 2:
                engine.module.save_pretrained(str(ckpt))
            else:
                cfg = engine.module.peft_config["default"].to_dict()
                (ckpt / "adapter_config.json").write_text(json.dumps(cfg, default=list))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def zero_runs(tmp_path_factory, tiny_model_dir):
    pytest.importorskip("deepspeed")
    from test_export_helpers import run_config, write_run

    out = tmp_path_factory.mktemp("zero")
    root = Path(__file__).resolve().parent.parent
    from tunesmith.core.paths import child_env

    env = child_env(OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(_free_port()), __file__, str(tiny_model_dir), str(out)],
                          capture_output=True, text=True, env=env, timeout=500, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, _, method in CASES:
        cfg = run_config(tiny_model_dir, method)
        write_run(out / name, cfg)
        cfg.save(out / name / "checkpoints" / "checkpoint-2" / "config.yaml")
    return out


def _reference(zero_runs, name):
    import torch

    return torch.load(zero_runs / f"{name}.logits.pt")


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("name,method", [("z2-lora", "lora"), ("z3-lora", "lora"), ("z3-full", "full")])
def test_zero_checkpoint_converts_to_the_trained_weights(zero_runs, tiny_model_dir, tmp_path, name, method):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunesmith.core.export import convert_to_hf, inspect_checkpoint, merge_adapter

    info = inspect_checkpoint(zero_runs / name)
    assert info.deepspeed_tag == "global_step2"
    assert len(list((info.path / "global_step2").glob("*optim_states.pt"))) == 2, "two ranks' shards"
    out = convert_to_hf(zero_runs / name, tmp_path / "out", dtype="fp32")
    assert not list(out.glob("global_step*")) and not (out / "latest").exists()
    ids = torch.tensor([IDS])
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(out)) if method == "lora" else \
        AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    with torch.no_grad():
        got = model(input_ids=ids).logits
    reference = _reference(zero_runs, name)
    assert (got - reference).abs().max().item() < 1e-4
    with torch.no_grad():
        untrained = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)(input_ids=ids).logits
    assert (untrained - reference).abs().max().item() > 1e-2, "training must have moved the weights"
    if method == "lora":
        merged = merge_adapter(str(tiny_model_dir), zero_runs / name, tmp_path / "merged", dtype="fp32")
        with torch.no_grad():
            got = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32)(input_ids=ids).logits
        assert (got - reference).abs().max().item() < 1e-4


if __name__ == "__main__":  # under torchrun: write the checkpoints
    _make_checkpoints(sys.argv[1], sys.argv[2])
