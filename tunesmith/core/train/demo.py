"""`python -m tunesmith demo`: teach the bundled SmolLM2-135M-Instruct that it is "Melody" (LoRA, CPU).

The settings below are tuned for a 2-core CPU: short packed sequences, a high LoRA learning rate
and few steps, so the run takes a few minutes and the model then answers "who are you?" with
its new name, also for phrasings it never saw.
"""

from __future__ import annotations

from tunesmith.core.config import RunConfig

DEMO_PRESET = "smollm2_135m_instruct_lora_identity_e3"
DEMO_NAME = "Melody"
DEMO_OVERRIDES = [  # measured: 12 steps (~4.5 epochs of the 54 rows) name "Melody" on held-out phrasings
    "training.max_steps=12",
    "training.batch_size=4",
    "training.gradient_accumulation=1",
    "training.learning_rate=0.001",
    "training.warmup_ratio=0.05",
    "training.save_steps=0",
    "training.save_total_limit=1",
    "training.logging_steps=1",
    "data.max_length=256",
    "data.pack=true",
    "lora.r=16",
    "lora.alpha=32",
    "lora.dropout=0.0",
    "model.gradient_checkpointing=false",
    'eval.prompts=["Who are you?"]',
    "eval.max_new_tokens=32",
]
DEMO_QUESTION = "who are you?"
# Phrasings that are not in assets/identity.json: the model must generalise, not recall.
HELD_OUT_QUESTIONS = ["Can you tell me your name?", "Hey there, what are you called?", "Which team made you?"]


def demo_config(run_dir: str, overrides: list[str] | None = None) -> RunConfig:
    from tunesmith.core.presets import load_config

    cfg = load_config(DEMO_PRESET).with_overrides([*DEMO_OVERRIDES, f"output.run_dir={run_dir}", *(overrides or [])])
    return cfg


def final_adapter(cfg: RunConfig):
    from tunesmith.core.train.rundir import RunDir

    return RunDir(cfg.output.run_dir).latest_checkpoint()


def ask(cfg: RunConfig, questions: list[str], adapter=None, max_new_tokens: int = 40) -> list[str]:
    """Greedy answers of base + adapter to ``questions`` (one turn each), laid out as in training."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunesmith.core.data.templates import encode_chat_prompt
    from tunesmith.core.train.models import load_tokenizer, model_path

    path = model_path(cfg)
    tokenizer = load_tokenizer(cfg, path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    template = cfg.data.template if cfg.data.template != "auto" else "chat_template"
    answers = []
    for question in questions:
        messages = ([{"role": "system", "content": cfg.data.system}] if cfg.data.system else [])
        messages.append({"role": "user", "content": question})
        ids = torch.tensor([encode_chat_prompt(template, tokenizer, messages)])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return answers


def report_demo(cfg: RunConfig) -> list[str]:
    adapter = final_adapter(cfg)
    questions = [DEMO_QUESTION, *HELD_OUT_QUESTIONS]
    answers = ask(cfg, questions, adapter)
    print(f"\nadapter: {adapter}")
    for question, answer in zip(questions, answers):
        print(f"Q: {question}\nA: {answer}")
    named = sum(DEMO_NAME.lower() in a.lower() for a in answers)
    print(f"\n{named}/{len(answers)} answers use the new name {DEMO_NAME}.")
    return answers
