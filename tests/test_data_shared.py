"""Real dataset files from ../shared/data: each format maps to non-empty conversations (skips when absent)."""

from __future__ import annotations

import pytest

from tunesmith.core.config import DataConfig
from tunesmith.core.data.loading import load_rows
from tunesmith.core.data.map_fns import RowSkipped, get_map_fn, suggest_map_fn
from tunesmith.core.data.map_fns import parse_columns_arg

# (file, map_fn or "columns:<spec>", suggested by auto (None: auto cannot tell), first answer starts with)
FILES = [
    ("axolotl/alpaca.json", "alpaca", "columns", "['world', 'Hello']"),
    ("axolotl/conversation.json", "sharegpt", "sharegpt", "It's possible to use algebraic topology"),
    ("colors/colors_xtuner_docs_sample.jsonl", "colors", "colors", "#66ccff"),
    ("internlm_tutorial/MedQA2019-structured-train.json", "standard", "standard", "tell your doctor"),
    ("internlm_tutorial/ruozhiba_alpaca.jsonl", "alpaca", "columns", "尽管我们相聚的时光有限"),
    ("internlm_tutorial/ruozhiba_messages.jsonl", "openai", "openai", "尽管我们相聚的时光有限"),
    ("llamafactory/alpaca_en_demo.json", "alpaca", "columns", "Making crepes is an easy"),
    ("llamafactory/alpaca_zh_demo.json", "alpaca", "columns", ""),
    ("llamafactory/identity.json", "alpaca", "columns", "Hello! I am {{name}}"),
    ("llamafactory/glaive_toolcall_en_demo.json", "sharegpt", "sharegpt", "Of course!"),
    ("llamafactory/kto_en_demo.json", "openai", "openai", "Ooh ooh ah ah!"),
    ("llamafactory/c4_demo.jsonl", "pretrain", "pretrain", "Don’t think you need"),
    ("llamafactory/wiki_demo.txt", "pretrain", "pretrain", "Anarchism is a political"),
    ("llamafactory_legacy/oaast_sft_zh.json", "columns:input=instruction,output=output,history=history", "columns",
     "根据维基百科"),
    ("msagent/msagent_readme_sample.json", "msagent_react", "msagent_react", "Action:modelscope_text-ie"),
    ("oasst1_guanaco_style/oasst_en_100_guanaco_format.jsonl", "oasst1", "oasst1", "The first step is to research"),
    ("xtuner_demo/single_turn/data.json", "columns:system=toy_system,input=toy_input,output=toy_output", None,
     "1.Eat a balanced diet."),
    ("xtuner_demo/multi_turn_1/data.json",
     "columns:history=messages,system=toy_system,input=toy_input,output=toy_output", "openai", "1.Eat a balanced diet."),
    ("xtuner_demo/multi_turn_2/data.json", "openai", "openai", "1.Eat a balanced diet."),
    ("xtuner_demo/pretrain/data.json", "columns:text=toy_text", None, "I am an artificial intelligence"),
    ("xtuner_tests/openai_sft.jsonl", "openai", "openai", "1.Eat a balanced diet"),
    ("xtuner_tests/mllm_sft_text_example_data.jsonl", "openai", "openai", "Let's think about"),
    ("xtuner_tests/pretrain_example_data.jsonl", "openai", "openai", "Stay hydrated"),
]


def _map_fn(spec: str):
    if spec.startswith("columns:"):
        return get_map_fn("columns", parse_columns_arg(spec.split(":", 1)[1]))
    return get_map_fn(spec)


@pytest.mark.parametrize("rel,spec,suggested,first_answer", FILES, ids=[f[0] for f in FILES])
def test_real_file_maps_to_conversations(shared_data, rel, spec, suggested, first_answer):
    ds = load_rows(str(shared_data / rel))
    rows = ds.select(range(min(ds.num_rows, 50))).to_list()
    assert suggest_map_fn(ds.column_names, rows[0]) == suggested
    fn = _map_fn(spec)
    conversations = []
    for row in rows:
        try:
            conversations.append(fn(row)["conversation"])
        except RowSkipped:
            pass
    assert len(conversations) >= max(1, len(rows) // 2)
    for conv in conversations:
        assert conv and all(turn["output"].strip() for turn in conv)
    assert conversations[0][-1]["output"].startswith(first_answer) or conversations[0][0]["output"].startswith(first_answer)


def test_multi_turn_demo_keeps_both_turns(shared_data):
    ds = load_rows(str(shared_data / "xtuner_demo/multi_turn_1/data.json"))
    fn = _map_fn(FILES[17][1])
    conv = fn(ds[0])["conversation"]
    assert [t["input"] for t in conv] == ["Give three tips for staying healthy.", "How to study English?"]
    assert conv[0]["system"] == "You are a helpful AI assistant."


def test_real_files_encode_end_to_end(shared_data, tokenizer):
    from tunesmith.core.data.preview import preview

    p = preview(DataConfig(path=str(shared_data / "xtuner_demo/multi_turn_2/data.json"), template="internlm2_chat"),
                tokenizer, n=1)
    assert p.stats.kept == p.stats.rows == 2 and p.map_fn == "openai"
    supervised = [t for t, s in p.samples[0].segments if s]
    assert supervised == ["1.Eat a balanced diet. 2. Exercise regularly. 3. Get enough sleep.<|im_end|>",
                          "1. Set clear goals. 2. Create a study plan. 3. Build vocabulary. 4. Practice speaking.<|im_end|>"]
    pre = preview(DataConfig(path=str(shared_data / "llamafactory/wiki_demo.txt"), max_length=512), tokenizer,
                  stage="pretrain", n=1, max_stats_rows=50)
    assert pre.template == "" and pre.stats.truncated > 0 and pre.stats.supervised_share > 0.99


def test_preference_files(shared_data, tokenizer):
    from tunesmith.core.data.preference import build_preference_data

    dpo = build_preference_data(DataConfig(path=str(shared_data / "llamafactory/dpo_en_demo.json"),
                                           template="internlm2_chat", max_samples=20), tokenizer)
    row = dpo.train[0]
    assert row["prompt"].startswith("<|im_start|><|im_start|>user\n") and row["prompt"].endswith("<|im_start|>assistant\n")
    assert row["chosen"].endswith("<|im_end|>") and row["rejected"].endswith("<|im_end|>")
    rm = build_preference_data(DataConfig(path=str(shared_data / "llamafactory_legacy/oaast_rm_zh.json"),
                                          template="chat_template", max_samples=40), tokenizer)
    assert rm.train[0]["prompt"][-1]["role"] == "user" and rm.train[0]["chosen"][0]["role"] == "assistant"
    assert rm.stats.kept + sum(rm.stats.dropped.values()) == 40
