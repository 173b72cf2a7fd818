"""The GPU memory estimate: exact hand-computed numbers for a tiny Llama, then sanity checks on a 7B
(XTuner's 8 GB claim, full fine-tuning vs 80 GB, ZeRO splitting), fit_to_gpu and the `estimate` CLI."""

from __future__ import annotations

import json

import pytest

from tunesmith.core.cli import main
from tunesmith.core.config import RunConfig
from tunesmith.core.memory import GiB, PARAMS, PARTS, estimate_from_spec, estimate_memory, fit_to_gpu
from tunesmith.core.memory.fit import CannotFit
from tunesmith.core.model import arch_spec
from tunesmith.core.model import param_inventory

# A tiny Llama: hidden 64, 2 layers, 4 heads / 2 KV heads (head dim 16, KV width 32), MLP 128, vocab 1000.
TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000,
        "max_position_embeddings": 256, "tie_word_embeddings": False}
# Llama-2-7B's published config.json numbers.
LLAMA2_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
             "intermediate_size": 11008, "vocab_size": 32000, "max_position_embeddings": 4096,
             "torch_dtype": "float16", "tie_word_embeddings": False}


def model_dir(tmp_path, config: dict, name: str = "model"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def run_cfg(model, *overrides) -> RunConfig:
    return RunConfig().with_overrides([f"model.name_or_path={model}", "data.path=tatsu-lab/alpaca", *overrides])


@pytest.fixture(scope="module")
def llama7b(tmp_path_factory):
    return model_dir(tmp_path_factory.mktemp("l7"), LLAMA2_7B)


def tiny_estimate(*overrides):
    cfg = run_cfg("unused", "training.batch_size=2", "data.max_length=128", *overrides)
    return estimate_from_spec(cfg, arch_spec(TINY), param_inventory(TINY))


def test_tiny_inventory_matches_hand_count():
    inv = param_inventory(TINY)
    # per layer: q 64x64 + k 64x32 + v 64x32 + o 64x64 + gate/up/down 3 x 64x128 = 36,864; two layers 73,728
    assert inv.linear == 73_728
    assert inv.embedding == 64_000 and inv.lm_head == 64_000  # 1000 x 64 each, untied
    assert inv.other == 2 * 2 * 64 + 64                       # two RMSNorms per layer + the final one
    assert inv.total == 73_728 + 128_000 + 320 == 202_048
    # LoRA r=8: 8 x (in + out) per layer: q 1024, k 768, v 768, o 1024, gate/up/down 1536 each = 8,192 per layer
    assert inv.lora_params(8, ["all-linear"]) == 16_384
    assert inv.lora_params(8, ["q_proj", "v_proj"]) == 2 * (1024 + 768)


def test_tiny_lora_estimate_by_hand():
    est = tiny_estimate("method.finetuning=lora", "lora.r=8", "lora.dropout=0.1",
                        "model.gradient_checkpointing=false")
    b = est.breakdown
    assert b["weights"] == 202_048 * 2                 # frozen bf16 base
    assert b["adapters"] == 16_384 * 4                 # fp32 LoRA weights
    assert b["gradients"] == 16_384 * 4
    assert b["optimizer"] == 16_384 * 8                # AdamW m + v in fp32
    # activations per token and layer (a = 2 bytes, h 64, q 64, kv 32, I 128, 4 heads; SDPA here, no flash-attn,
    # so transformers repeats k/v to the 4 query heads):
    #   norms 2 x 4 x 64 = 512; attention 2 x (2 x 64 + 2 x 64) + fp32 lse 4 x 4 = 528; SwiGLU 2 x 3 x 128 = 768;
    #   LoRA inputs (q,k,v,o,gate,up: 64 each; down: 128) = 512 values x (2 + 1 mask) = 1536,
    #   LoRA rank outputs 7 x 8 x 2 = 112  -> 3,456 per layer
    # per token: 2 layers x 3,456 + final norm 256 + head input 128 + backward workspace 2 x 128 x 4 = 1,024
    #   -> 8,320; once per layer autocast's bf16 copies of the adapters (16,384 / 2 layers x 2 B = 16,384 B)
    #   and the packed batch's 256 x 128 bf16 attention mask (65,536 B)
    tokens = 2 * 128
    assert est.details["activation_bytes_per_token_per_layer"] == 3_456
    assert est.details["activation_adapter_copies"] == 16_384 and est.details["attention_mask"] == 65_536
    assert b["activations"] == tokens * 8_320 + 2 * 16_384 + 65_536 == 2_228_224
    # chunked loss (LoRA's default): one chunk (all 256 tokens here) of bf16 logits + 4 B of fp32 work
    assert b["logits"] == tokens * 1000 * (2 + 4) == 1_536_000
    dynamic = 404_096 + 65_536 + 65_536 + 131_072 + 2_228_224 + 1_536_000
    assert b["overhead"] == PARAMS.cuda_context_bytes + int(0.05 * dynamic)
    assert est.total == dynamic + b["overhead"]
    assert set(b) == set(PARTS)


def test_tiny_checkpointing_keeps_only_layer_inputs():
    est = tiny_estimate("method.finetuning=lora", "lora.r=8", "model.gradient_checkpointing=true")
    # 2 layer inputs x 2 bytes x 64 + one recomputed layer 3,456 + 384 + 1,024 = 5,120 per token, one layer's
    # adapter copies (16,384 B) and the attention mask (65,536 B)
    assert est.breakdown["activations"] == 256 * 5_120 + 16_384 + 65_536


def test_tiny_qlora_weights_by_hand():
    est = tiny_estimate("method.finetuning=qlora")
    # linear layers in nf4 with double quant: 0.5 + 1/64 + 4/(64*256) B/param = 0.515869... B
    assert est.details["weights_quantized"] == int(73_728 * 0.5 + 73_728 / 64 + 73_728 * 4 / 16_384) == 38_034
    # embeddings, head and norms stay in the compute dtype (bf16): our k-bit preparation does not upcast them
    assert est.details["weights_unquantized"] == (202_048 - 73_728) * 2
    assert est.breakdown["weights"] == 38_034 + 256_640
    assert est.details["dequant_buffer"] == 64 * 128 * 2      # largest linear de-quantised to bf16


def test_tiny_full_finetune_by_hand():
    est = tiny_estimate("method.finetuning=full")
    b = est.breakdown
    # HF Trainer AMP: fp32 weights + bf16 autocast copies of the matmul weights (linears + head)
    assert b["weights"] == 202_048 * 4 + (73_728 + 64_000) * 2
    assert b["gradients"] == 202_048 * 4 and b["optimizer"] == 202_048 * 8 and b["adapters"] == 0


def test_7b_qlora_against_xtuners_8gb_claim(llama7b):
    """XTuner claims 7B fine-tuning on an 8 GB GPU. With its default QLoRA config (r=64 on all linear
    layers, plain AdamW, 2048 packed tokens, gradient checkpointing) and our engine (bf16 embeddings/head,
    chunked loss) the estimate is ~8.2 GB: 4-bit weights 3.1 GB + bf16 embeddings/head 0.5 GB + LoRA
    states 2.4 GB (160M params x 16 B) + activations + CUDA context. The 8-bit AdamW that the presets and
    "Fit" choose brings it under 8 GB at rank 64; offloaded checkpoints take it under 7 GB."""
    cfg = run_cfg(llama7b, "method.finetuning=qlora", "model.gradient_checkpointing=true",
                  "training.batch_size=1", "data.max_length=2048")
    est = estimate_memory(cfg, gpu_gb=8)
    assert 7.8 * GiB < est.total < 8.6 * GiB
    assert not est.fits(8) and est.fits(12)
    assert est.details["weights_quantized"] == int(6_476_005_376 * (0.5 + 1 / 64 + 4 / 16_384))  # 3.11 GB
    assert est.details["weights_unquantized"] == 262_410_240 * 2  # embeddings + head (2 x 32,000 x 4,096) + 65 norms, bf16
    ours = cfg.with_overrides(["training.optimizer=paged_adamw_8bit", "model.offload_checkpoints=true"])
    assert estimate_memory(ours).total < 7.0 * GiB
    fitted, changes = fit_to_gpu(cfg, 8)
    assert estimate_memory(fitted).fits(8)
    assert fitted.data.max_length == 2048 and fitted.training.batch_size == 1 and fitted.lora.r == 64
    assert [c.split(":")[0] for c in changes] == ["optimizer adamw_torch -> paged_adamw_8bit"]


def test_7b_full_fp16_without_zero_does_not_fit_80gb(llama7b):
    cfg = run_cfg(llama7b, "method.finetuning=full", "training.precision=fp16", "training.learning_rate=2e-5")
    est = estimate_memory(cfg)
    assert not est.fits(80)
    # at least 16 B/param of model states (fp32 weights, grads, m, v)
    assert est.breakdown["weights"] + est.breakdown["gradients"] + est.breakdown["optimizer"] >= 16 * 6.738e9


def _states(est) -> int:
    return est.breakdown["weights"] + est.breakdown["gradients"] + est.breakdown["optimizer"]


def test_zero_stages_split_states_like_the_deepspeed_docs(llama7b):
    n = param_inventory(LLAMA2_7B).total
    base = ["method.finetuning=full", "training.learning_rate=2e-5"]
    one = estimate_memory(run_cfg(llama7b, *base, "distributed.deepspeed=zero3", "distributed.nproc_per_node=1"))
    eight = estimate_memory(run_cfg(llama7b, *base, "distributed.deepspeed=zero3", "distributed.nproc_per_node=8"))
    gathered = eight.details["zero3_gathered_layers"]
    assert _states(eight) - gathered == pytest.approx(16 * n / 8, rel=1e-6)  # ZeRO-3: 16x/N
    assert 6.5 < _states(one) / _states(eight) <= 8.0                       # ~8x less per GPU
    z1 = estimate_memory(run_cfg(llama7b, *base, "distributed.deepspeed=zero1", "distributed.nproc_per_node=8"))
    z2 = estimate_memory(run_cfg(llama7b, *base, "distributed.deepspeed=zero2", "distributed.nproc_per_node=8"))
    assert _states(z1) == pytest.approx((4 + 12 / 8) * n, rel=1e-6)   # ZeRO-1: 4x + 12x/N
    assert _states(z2) == pytest.approx((2 + 14 / 8) * n, rel=1e-6)   # ZeRO-2: 2x + 14x/N
    off = estimate_memory(run_cfg(llama7b, *base, "distributed.deepspeed=zero3_offload",
                                  "distributed.nproc_per_node=8"))
    assert off.breakdown["optimizer"] == 0 and off.details["cpu_offloaded"] > 12 * n / 8
    assert off.breakdown["weights"] == gathered


def test_activations_scale_with_batch_and_checkpointing(llama7b):
    base = run_cfg(llama7b, "method.finetuning=lora", "model.gradient_checkpointing=false", "training.loss=standard")
    one_est = estimate_memory(base)
    one = one_est.breakdown
    two = estimate_memory(base.with_overrides(["training.batch_size=2"])).breakdown
    ckpt = estimate_memory(base.with_overrides(["model.gradient_checkpointing=true"])).breakdown
    fixed = 32 * one_est.details["activation_adapter_copies"]  # per layer, not per token
    assert two["activations"] - fixed == 2 * (one["activations"] - fixed) and two["logits"] == 2 * one["logits"]
    assert ckpt["activations"] < one["activations"] / 5
    dpo = estimate_memory(base.with_overrides(["method.stage=dpo"])).breakdown
    assert dpo["logits"] == 2 * one["logits"]  # chosen + rejected


def test_ddp_adds_a_gradient_bucket_copy(llama7b):
    one = estimate_memory(run_cfg(llama7b, "method.finetuning=lora"))
    two = estimate_memory(run_cfg(llama7b, "method.finetuning=lora", "distributed.nproc_per_node=2"))
    assert two.breakdown["gradients"] == 2 * one.breakdown["gradients"]


def test_estimate_object_api(llama7b):
    est = estimate_memory(run_cfg(llama7b), gpu_gb=24)
    assert est.fits() and est.fits(24) and not est.fits(4)
    data = json.loads(json.dumps(est.to_dict()))
    assert data["total"] == est.total and data["fits"] is True and set(data["breakdown"]) == set(PARTS)
    assert data["allocated"] == est.total - PARAMS.cuda_context_bytes - est.details["fragmentation"]
    text = est.summary()
    assert all(part in text for part in PARTS) and "fits a 24 GB GPU" in text


def test_fit_keeps_effective_batch_and_says_what_changed(llama7b):
    cfg = run_cfg(llama7b, "method.finetuning=full", "training.batch_size=4", "training.gradient_accumulation=4",
                  "model.gradient_checkpointing=false", "training.learning_rate=2e-5")
    fitted, changes = fit_to_gpu(cfg, 24)
    assert estimate_memory(fitted).fits(24)
    assert changes[0].startswith("gradient checkpointing on")
    assert changes[1].startswith("batch size 4 -> 1, gradient accumulation 4 -> 16")
    assert fitted.effective_batch_size == cfg.effective_batch_size == 16
    assert fitted.method.finetuning in ("lora", "qlora") and fitted.training.learning_rate == 2e-4
    assert cfg.method.finetuning == "full"  # the input is not modified
    same, none = fit_to_gpu(fitted, 80)
    assert none == [] and same == fitted


def test_fit_reports_when_nothing_fits(llama7b):
    with pytest.raises(CannotFit) as err:
        fit_to_gpu(run_cfg(llama7b), 2)
    assert "cannot be made to fit a 2 GB GPU" in str(err.value) and "Fix:" in str(err.value)
    assert err.value.config.data.max_length == 256 and err.value.changes


def test_moe_experts_stay_unquantised(tmp_path):
    mixtral = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
               "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
               "intermediate_size": 14336, "vocab_size": 32000, "num_local_experts": 8, "num_experts_per_tok": 2}
    inv = param_inventory(mixtral)
    assert 46.6e9 < inv.total < 46.8e9
    est = estimate_memory(run_cfg(model_dir(tmp_path, mixtral), "method.finetuning=qlora"))
    assert any("not nn.Linear" in note for note in est.notes)


def test_estimate_cli_table_and_json(tmp_path, capsys, llama7b):
    cfg_path = run_cfg(llama7b).save(tmp_path / "run.yaml")
    assert main(["estimate", str(cfg_path), "--gpu-gb", "8"]) == 0
    out = capsys.readouterr().out
    assert "weights" in out and "logits" in out and "does NOT fit a 8 GB GPU" in out
    assert main(["estimate", str(cfg_path), "--gpu-gb", "8", "--json", "--fit"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is False and data["gpu_gb"] == 8 and data["fit"]["fits"] is True
    assert main(["estimate", str(cfg_path), "--json", "--set", "lora.r=8", "--gpu-gb", "24"]) == 0
    assert json.loads(capsys.readouterr().out)["breakdown"]["adapters"] < data["breakdown"]["adapters"]


def test_estimate_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["estimate", "qwen2_7b_instruct_qlora_alpaca_e"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown preset") and "qwen2_7b_instruct_qlora_alpaca_e3" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["estimate", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [\n", encoding="utf-8")
    assert main(["estimate", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["estimate", "qwen2_7b_instruct_qlora_alpaca_e3", "--set", "model.name_or_path=someorg/unknown",
                 "--gpu-gb", "8"]) == 2  # a hub model that is neither cached nor a preset model
    assert "huggingface-cli download someorg/unknown" in capsys.readouterr().err


def test_custom_deepspeed_json_buckets(tmp_path, llama7b):
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 2, "reduce_bucket_size": 1_000_000,
                                                    "overlap_comm": False}}), encoding="utf-8")
    est = estimate_memory(run_cfg(llama7b, "method.finetuning=full", f"distributed.deepspeed={ds}",
                                  "distributed.nproc_per_node=4"))
    assert est.details["deepspeed_buffers"] == 1_000_000 * 2  # one bf16 bucket
    auto = tmp_path / "auto.json"
    auto.write_text(json.dumps({"zero_optimization": {"stage": 3, "reduce_bucket_size": "auto"}}), encoding="utf-8")
    est3 = estimate_memory(run_cfg(llama7b, "method.finetuning=full", f"distributed.deepspeed={auto}"))
    assert est3.details["deepspeed_buffers"] == 4096 * 4096 * 2  # "auto" = hidden^2, as HF fills it
