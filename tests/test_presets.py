"""Presets: every file loads and validates, follows XTuner's naming and defaults, and the CLI-facing
helpers (list / load / copy) behave like XTuner's list-cfg and copy-cfg."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tunesmith.core import paths, preflight
from tunesmith.core.config import EMBEDDED_MODEL, RunConfig
from tunesmith.core.errors import ConfigError
from tunesmith.core.presets import DEFAULT_PRESET, copy_preset, list_presets, load_config, resolve_asset_path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tunesmith" / "presets"))
import make_presets  # noqa: E402

NAME = re.compile(r"^(?P<model>[a-z0-9_]+?)_(?P<method>qlora|lora|full)_(?P<data>[a-z0-9_]+)_e(?P<epochs>\d+)$")
ALL = list_presets()
XTUNER_TEMPLATES = {  # the 27 names of xtuner/utils/templates.py, plus the tokenizer's own template
    "default", "zephyr", "internlm_chat", "internlm2_chat", "moss_sft", "llama2_chat", "code_llama_chat", "chatglm2",
    "chatglm3", "qwen_chat", "baichuan_chat", "baichuan2_chat", "wizardlm", "wizardcoder", "vicuna",
    "deepseek_coder", "deepseekcoder", "deepseek_moe", "deepseek_v2", "mistral", "mixtral", "minicpm", "minicpm3",
    "gemma", "cohere_chat", "llama3_chat", "phi3_chat", "chat_template"}


def test_there_are_presets_and_the_default_exists():
    assert len(ALL) >= 40
    assert DEFAULT_PRESET in ALL
    cfg = load_config(DEFAULT_PRESET)
    assert cfg.model.name_or_path == EMBEDDED_MODEL and cfg.method.finetuning == "lora"


@pytest.mark.parametrize("name", ALL)
def test_every_preset_loads_and_validates(name):
    cfg = load_config(name)
    m = NAME.match(name)
    assert m, f"{name} does not follow {{model}}_{{qlora|lora|full}}_{{dataset}}_e{{epochs}}"
    assert cfg.method.finetuning == m["method"]
    assert cfg.training.num_epochs == int(m["epochs"])
    assert cfg.output.name == name
    assert cfg.model.trust_remote_code is False
    assert cfg.data.template in XTUNER_TEMPLATES and cfg.data.template != "auto"
    assert cfg.data.map_fn not in ("", "auto")
    assert cfg.training.lr_scheduler == "cosine" and cfg.training.warmup_ratio == 0.03
    assert cfg.model.gradient_checkpointing is (not name.startswith("smollm2_135m"))  # CPU demo: no need

    problems = preflight.problems(cfg, check_paths=True, check_env=False)
    assert problems == [], [str(p) for p in problems]


@pytest.mark.parametrize("name", [n for n in ALL if not n.startswith("smollm2_135m")])
def test_hub_presets_use_xtuner_defaults(name):
    cfg = load_config(name)
    expected_lr = 2e-5 if cfg.method.finetuning == "full" else 2e-4
    assert cfg.training.learning_rate == expected_lr
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules) == (64, 16, 0.1, ["all-linear"])
    assert cfg.data.max_length == 2048
    assert cfg.data.pack is (not name.endswith("msagent_react_e3"))  # XTuner's msagent configs do not pack
    assert (cfg.training.batch_size, cfg.training.gradient_accumulation) == (1, 16)
    assert "/" in cfg.model.name_or_path  # a real hub id


def test_families_and_datasets_are_all_covered():
    families = {m.family for m in make_presets.MODELS.values()}
    assert families >= {"internlm2", "internlm2.5", "llama2", "llama3", "qwen", "qwen1.5", "qwen2", "chatglm3",
                        "baichuan2", "mistral", "mixtral", "yi", "gemma", "phi3", "deepseek", "starcoder", "zephyr",
                        "minicpm", "smollm2"}
    used_families = {make_presets.MODELS[p[0]].family for p in make_presets.PRESETS}
    assert used_families == families
    datasets = {NAME.match(n)["data"] for n in ALL}
    assert datasets >= {"alpaca", "alpaca_zh", "oasst1", "colors", "code_alpaca", "medical", "sql", "msagent_react",
                        "identity"}


def test_known_hub_ids_and_templates():
    configs = [load_config(n) for n in ALL]
    by_path = {c.model.name_or_path: c.data.template for c in configs}
    assert by_path["internlm/internlm2_5-7b-chat"] == "internlm2_chat"
    assert by_path["meta-llama/Meta-Llama-3-8B-Instruct"] == "llama3_chat"
    assert by_path["Qwen/Qwen2-7B-Instruct"] == "qwen_chat"
    assert by_path["THUDM/chatglm3-6b"] == "chatglm3"
    assert by_path["HuggingFaceTB/SmolLM2-1.7B-Instruct"] == "chat_template"
    data = {c.data.path for c in configs}
    assert {"tatsu-lab/alpaca", "timdettmers/openassistant-guanaco", "burkelibbey/colors"} <= data


def test_remote_code_presets_say_so_in_their_comment():
    text = (paths.presets_dir() / "chatglm3_6b_qlora_alpaca_zh_e3.yaml").read_text(encoding="utf-8")
    assert text.startswith("# chatglm3_6b_qlora_alpaca_zh_e3: QLoRA")
    assert "trust_remote_code: true only if you trust THUDM" in text
    assert "trust_remote_code: false" in text
    plain = (paths.presets_dir() / "qwen2_7b_instruct_qlora_alpaca_e3.yaml").read_text(encoding="utf-8")
    assert "ships its own modelling code" not in plain


def test_templates_and_map_fns_exist_in_the_data_pipeline():
    from tunesmith.core.data import map_fns, templates

    for name in ALL:
        cfg = load_config(name)
        if cfg.data.template != "chat_template":
            assert cfg.data.template in templates.PROMPT_TEMPLATES, (name, cfg.data.template)
        assert cfg.data.map_fn in map_fns.MAP_FNS, (name, cfg.data.map_fn)


def test_identity_preset_map_fn_matches_the_asset():
    import json

    from tunesmith.core.data import map_fns

    asset = paths.assets_dir() / "identity.json"

    first = json.loads(asset.read_text(encoding="utf-8"))[0]
    assert map_fns.suggest_map_fn(list(first)) == load_config(DEFAULT_PRESET).data.map_fn


def test_generated_files_are_in_sync_with_the_generator():
    for model_key, method, data_key, epochs, extra in make_presets.PRESETS:
        name, cfg, header = make_presets.build(model_key, method, data_key, epochs, extra)
        text = (paths.presets_dir() / f"{name}.yaml").read_text(encoding="utf-8")
        assert text == header + cfg.to_yaml(), f"{name}.yaml is stale: run python tunesmith/presets/make_presets.py"
    assert len(make_presets.PRESETS) == len(ALL)


def test_list_presets_filters_like_list_cfg():
    qwen = list_presets("QWEN")
    assert qwen and all("qwen" in n for n in qwen)
    assert "qwen2_7b_instruct_qlora_alpaca_e3" in qwen
    assert list_presets("*_full_*") == [n for n in ALL if "_full_" in n]
    assert list_presets("no-such-thing") == []


def test_unknown_preset_suggests_close_matches():
    with pytest.raises(ConfigError) as err:
        load_config("internlm2_chat_7b_qlora_oasst_e3")
    assert "unknown preset" in str(err.value) and "internlm2_chat_7b_qlora_oasst1_e3" in str(err.value)


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  batch_size: [1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line"):
        load_config(str(bad))


def test_asset_paths_resolve_against_the_repo_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(DEFAULT_PRESET)
    assert Path(cfg.data.path).is_absolute()
    assert cfg.data.path == str(paths.PACKAGE_ROOT / "assets" / "identity.json")
    assert resolve_asset_path("tatsu-lab/alpaca") == "tatsu-lab/alpaca"
    local = tmp_path / "mine.jsonl"
    local.write_text("{}\n", encoding="utf-8")
    assert resolve_asset_path("mine.jsonl") == "mine.jsonl"  # exists relative to the cwd: left alone


def test_copy_preset_writes_name_copy_and_never_overwrites(tmp_path, monkeypatch):
    out = copy_preset("qwen2_7b_instruct_qlora_alpaca_e3", tmp_path / "cfgs")
    assert out == tmp_path / "cfgs" / "qwen2_7b_instruct_qlora_alpaca_e3_copy.yaml"
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Copied from preset qwen2_7b_instruct_qlora_alpaca_e3")
    assert "Generated by" not in text
    assert load_config(str(out)) == load_config("qwen2_7b_instruct_qlora_alpaca_e3")
    out.write_text(text + "# my edit\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists"):
        copy_preset("qwen2_7b_instruct_qlora_alpaca_e3", tmp_path / "cfgs")
    assert out.read_text(encoding="utf-8").endswith("# my edit\n")
    # an identity copy loaded from elsewhere still finds the bundled data
    copied = copy_preset(DEFAULT_PRESET, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert load_config(str(copied)).data.path == str(paths.PACKAGE_ROOT / "assets" / "identity.json")


def test_presets_round_trip_through_yaml():
    for name in ALL[:5]:
        cfg = load_config(name)
        assert RunConfig.from_yaml(cfg.to_yaml()) == cfg


def _size(text: str) -> float:
    """'7.7B' -> 7.7e9, '135M, bundled with the app' -> 1.35e8."""
    m = re.match(r"([0-9.]+)([BM])", text)
    return float(m[1]) * (1e9 if m[2] == "B" else 1e6)


@pytest.mark.parametrize("model_key", [k for k in make_presets.MODELS if not k.startswith("smollm2_135m")])
def test_every_preset_model_has_facts_offline(model_key, tmp_path_factory, monkeypatch):
    import huggingface_hub.constants as hf_constants

    from tunesmith.core.model import model_facts

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hf-cache")))
    model = make_presets.MODELS[model_key]
    facts = model_facts(model.path)
    assert facts["source"] == "bundled snapshot"
    assert facts["params"] == pytest.approx(_size(model.params), rel=0.03), facts["params_human"]
    assert facts["needs_remote_code"] is model.remote_code


def test_every_preset_has_a_memory_estimate(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants

    from tunesmith.core.memory import estimate_memory

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    totals = {}
    for name in ALL:
        if name.startswith("smollm2_135m"):
            continue  # the embedded model needs its import; covered in test_model_info
        totals[name] = estimate_memory(load_config(name)).total_gb
    assert totals["llama2_7b_qlora_oasst1_e3"] < totals["llama2_7b_chat_qlora_alpaca_e3"] + 0.01
    assert totals["yi_34b_qlora_alpaca_e3"] > totals["yi_6b_qlora_alpaca_e3"] * 3
    assert totals["llama2_7b_full_alpaca_e3"] < 80  # 8 GPUs with ZeRO-3 as XTuner runs it
    assert all(1 < gb < 200 for gb in totals.values()), totals
