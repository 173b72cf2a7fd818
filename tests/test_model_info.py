"""Model facts from config.json only: parameter counts against real models and known published sizes,
the field-based count for remote-code architectures, the hub-cache lookup, and clear errors."""

from __future__ import annotations

import json

import pytest

from tunesmith.core.cli import main
from tunesmith.core.errors import UserError
from tunesmith.core.model import arch_spec, family_of, model_facts

# InternLM2-7B and ChatGLM3-6B config.json fields (both need remote code, so they are counted from fields).
INTERNLM2_7B = {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "hidden_size": 4096,
                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                "intermediate_size": 14336, "vocab_size": 92544, "max_position_embeddings": 32768,
                "torch_dtype": "bfloat16", "tie_word_embeddings": False,
                "auto_map": {"AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM"}}
CHATGLM3_6B = {"architectures": ["ChatGLMModel"], "model_type": "chatglm", "hidden_size": 4096, "num_layers": 28,
               "num_attention_heads": 32, "multi_query_attention": True, "multi_query_group_num": 2,
               "kv_channels": 128, "ffn_hidden_size": 13696, "padded_vocab_size": 65024, "seq_length": 8192,
               "torch_dtype": "float16"}


def write_model(folder, config: dict):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_tiny_model_facts_match_the_loaded_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    facts = model_facts(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert facts["params"] == sum(p.numel() for p in model.parameters())
    # 2 layers x (q,o 64x64 + k,v 64x32 + gate/up/down 64x128) + 2 x 49,152 x 64 embeddings/head + norms
    assert facts["params"] == 2 * (2 * 4096 + 2 * 2048 + 3 * 8192) + 2 * 49_152 * 64 + 5 * 64 == 6_365_504
    assert (facts["layers"], facts["hidden"], facts["heads"], facts["kv_heads"], facts["head_dim"]) == (2, 64, 4, 2, 16)
    assert (facts["intermediate"], facts["vocab"], facts["context"]) == (128, 49_152, 2048)
    assert facts["tied_embeddings"] is False and facts["param_source"] == "meta device"
    assert facts["architecture"] == "LlamaForCausalLM" and facts["source"] == "local"
    assert facts["needs_remote_code"] is False


def test_embedded_smollm2_facts(embedded_model_dir):
    facts = model_facts("embedded:SmolLM2-135M-Instruct")
    assert facts["params"] == 134_515_008  # 135M with the output head tied to the embeddings
    assert (facts["layers"], facts["hidden"], facts["heads"], facts["kv_heads"]) == (30, 576, 9, 3)
    assert facts["vocab"] == 49_152 and facts["tied_embeddings"] is True
    assert facts["family"] == "smollm2" and facts["source"] == "embedded"
    assert facts["template"] == "chat_template"
    assert facts["config_path"] == str(embedded_model_dir / "config.json")


def test_remote_code_architectures_are_counted_from_fields(tmp_path):
    ilm = model_facts(str(write_model(tmp_path / "internlm2_5-7b-chat", INTERNLM2_7B)))
    # 32 x (q 4096^2 + k,v 4096x1024 + o 4096^2 + 3 x 4096x14336) + 2 x 92,544 x 4096 + 65 x 4096 = 7.74B
    assert ilm["params"] == 32 * (2 * 4096 ** 2 + 2 * 4096 * 1024 + 3 * 4096 * 14336) + 2 * 92544 * 4096 \
        + 65 * 4096 == 7_737_708_544
    assert ilm["param_source"] == "config fields" and ilm["needs_remote_code"] is True
    assert ilm["family"] == "internlm2.5" and ilm["template"] == "internlm2_chat"
    glm = model_facts(str(write_model(tmp_path / "chatglm3-6b", CHATGLM3_6B)))
    assert (glm["layers"], glm["kv_heads"], glm["intermediate"], glm["vocab"], glm["context"]) == \
        (28, 2, 13696, 65024, 8192)
    assert 6.24e9 < glm["params"] < 6.25e9  # ChatGLM3-6B: 6.24B
    assert glm["dtype"] == "float16"


def test_arch_spec_reads_family_specific_names():
    starcoder = arch_spec({"model_type": "gpt_bigcode", "n_embd": 6144, "n_layer": 40, "n_head": 48,
                           "multi_query": True, "n_inner": 24576, "vocab_size": 49152, "n_positions": 8192})
    assert (starcoder.hidden, starcoder.layers, starcoder.kv_heads, starcoder.context) == (6144, 40, 1, 8192)
    assert starcoder.gated_mlp is False and starcoder.tied_embeddings is True
    qwen1 = arch_spec({"model_type": "qwen", "hidden_size": 4096, "num_hidden_layers": 32,
                       "num_attention_heads": 32, "intermediate_size": 22016, "vocab_size": 151936,
                       "seq_length": 8192})
    assert qwen1.intermediate == 11008  # Qwen-1 stores twice the per-projection width
    with pytest.raises(UserError, match="hidden_size"):
        arch_spec({"model_type": "bert"})
    assert family_of("01-ai/Yi-6B", "llama") == "yi" and family_of("x/y", "mistral") == "mistral"


def test_hub_id_found_only_in_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    with pytest.raises(UserError) as err:
        model_facts("someorg/unknown-model")
    assert "not in the local Hugging Face cache" in str(err.value)
    assert "huggingface-cli download someorg/unknown-model" in str(err.value)
    assert model_facts("internlm/internlm2_5-7b-chat")["source"] == "bundled snapshot"  # a preset model
    repo = cache / "models--internlm--internlm2_5-7b-chat"
    write_model(repo / "snapshots" / "abc123", INTERNLM2_7B)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123", encoding="utf-8")
    facts = model_facts("internlm/internlm2_5-7b-chat")
    assert facts["source"] == "hub cache" and facts["params"] == 7_737_708_544
    assert facts["family"] == "internlm2.5"


def test_bad_model_paths_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        model_facts(str(tmp_path))
    with pytest.raises(UserError, match="does not exist"):
        model_facts(str(tmp_path / "missing" / "folder"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="cannot read"):
        model_facts(str(tmp_path / "bad"))


def test_model_info_cli(tmp_path, capsys):
    folder = write_model(tmp_path / "chatglm3-6b", CHATGLM3_6B)
    assert main(["model-info", str(folder), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layers"] == 28 and data["template"] == "chatglm3"
    assert main(["model-info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "6.24B" in out and "trust_remote_code" in out
    assert main(["model-info", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: model folder")


def test_preset_models_work_offline_from_the_bundled_fields(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    qwen = model_facts("Qwen/Qwen2-7B-Instruct")
    assert qwen["source"] == "bundled snapshot" and qwen["param_source"] == "meta device"
    assert qwen["params"] == 7_615_616_512 and qwen["kv_heads"] == 4 and qwen["template"] == "qwen_chat"
    mixtral = model_facts("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert (mixtral["experts"], mixtral["experts_per_token"]) == (8, 2) and mixtral["params_human"] == "46.70B"
