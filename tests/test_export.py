"""convert to-hf and convert merge on the tiny model: logits match, folders load in plain HF/PEFT."""

from __future__ import annotations

import json

import pytest
from test_export_helpers import logits, make_full_run, make_lora_run, sample_ids


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    return make_lora_run(tmp_path_factory.mktemp("lora-run") / "run", tiny_model_dir)


@pytest.fixture(scope="module")
def base_model(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()


def _fresh_base(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()


def test_convert_lora_run_gives_plain_peft_folder_with_same_logits(lora_run, tiny_model_dir, tokenizer, tmp_path,
                                                                   base_model):
    from peft import PeftModel

    from tunesmith.core.export import convert_to_hf

    run_dir, models = lora_run
    seen = []
    out = convert_to_hf(run_dir, tmp_path / "adapter", dtype="fp32", progress=lambda f, m: seen.append((f, m)))

    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "generation_config.json",
            "config.yaml", "prompt_template.json", "README.md"} <= names
    assert not any(n in names for n in ("optimizer.pt", "trainer_state.json", "rng_state.pth"))
    assert not list(tmp_path.glob(".adapter*")), "the staging folder must be gone"

    ids = sample_ids(tokenizer)
    loaded = PeftModel.from_pretrained(_fresh_base(tiny_model_dir), str(out)).eval()
    expected = logits(models[10], ids)  # the run dir resolves to its newest checkpoint (10, not 5)
    assert (logits(loaded, ids) - expected).abs().max().item() < 1e-6
    assert (logits(models[5], ids) - expected).abs().max().item() > 1e-3
    assert (logits(base_model, ids) - expected).abs().max().item() > 1e-3, "the adapter must change the logits"

    template = json.loads((out / "prompt_template.json").read_text())
    assert template["name"] == "internlm2_chat" and template["stop_words"][0] == "<|im_end|>"
    readme = (out / "README.md").read_text()
    assert "loss 1.2500" in readme and str(tiny_model_dir) in readme and "r=8" in readme
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == 1.0


def test_convert_fp16_default_casts_adapter(lora_run, tmp_path):
    from safetensors import safe_open

    from tunesmith.core.export import convert_to_hf

    run_dir, _ = lora_run
    out = convert_to_hf(run_dir / "checkpoints" / "checkpoint-5", tmp_path / "a16")
    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as f:
        dtypes = {str(f.get_tensor(k).dtype) for k in f.keys()}
    assert dtypes == {"torch.float16"}


def test_merge_matches_base_plus_adapter(lora_run, tiny_model_dir, tokenizer, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.core.export import merge_adapter

    run_dir, models = lora_run
    ckpt = run_dir / "checkpoints" / "checkpoint-10"
    out = merge_adapter(str(tiny_model_dir), ckpt, tmp_path / "merged", dtype="fp32", max_shard_size="5MB")

    assert len(list(out.glob("model-*.safetensors"))) > 1 and (out / "model.safetensors.index.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert not any("lora" in k for k in merged.state_dict())
    ids = sample_ids(tokenizer)
    assert (logits(merged, ids) - logits(models[10], ids)).abs().max().item() < 1e-4
    assert AutoTokenizer.from_pretrained(str(out)).encode("hi") == tokenizer.encode("hi")
    assert json.loads((out / "prompt_template.json").read_text())["name"] == "internlm2_chat"


def test_full_finetune_round_trip_and_bin_format(tmp_path, tiny_model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from tunesmith.core.export import convert_to_hf

    run_dir, model = make_full_run(tmp_path / "full-run", tiny_model_dir)
    ids = sample_ids(tokenizer)
    out = convert_to_hf(run_dir, tmp_path / "full", dtype="fp32")
    loaded = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert (logits(loaded, ids) - logits(model, ids)).abs().max().item() < 1e-5
    assert "a full model" in (out / "README.md").read_text()

    out_bin = convert_to_hf(run_dir, tmp_path / "full-bin", dtype="bf16", safe=False)
    assert list(out_bin.glob("pytorch_model*.bin")) and not list(out_bin.glob("*.safetensors"))
    reloaded = AutoModelForCausalLM.from_pretrained(str(out_bin), dtype=torch.float32).eval()
    assert (logits(reloaded, ids) - logits(model, ids)).abs().max().item() < 0.1  # bf16 rounding only


def test_qlora_adapter_merges_into_the_dequantised_base(tmp_path, tiny_model_dir, tokenizer):
    """An adapter trained on a 4-bit base merges into the 16/32-bit base: merged == fp32 base + adapter."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from test_export_helpers import run_config, save_checkpoint, write_run
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from tunesmith.core.export import merge_adapter

    quantized = AutoModelForCausalLM.from_pretrained(
        str(tiny_model_dir), device_map="cpu", quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32))
    model = get_peft_model(quantized, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    cfg = run_config(tiny_model_dir, "qlora")
    run_dir = write_run(tmp_path / "qlora-run", cfg)
    ckpt = save_checkpoint(model, run_dir, 1, cfg)

    out = merge_adapter(str(tiny_model_dir), run_dir, tmp_path / "merged", dtype="fp32")
    import json as _json

    assert "quantization_config" not in _json.loads((out / "config.json").read_text())
    ids = sample_ids(tokenizer)
    reference = PeftModel.from_pretrained(_fresh_base(tiny_model_dir), str(ckpt)).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert (logits(merged, ids) - logits(reference, ids)).abs().max().item() < 1e-4
    assert (logits(merged, ids) - logits(_fresh_base(tiny_model_dir), ids)).abs().max().item() > 1e-3
