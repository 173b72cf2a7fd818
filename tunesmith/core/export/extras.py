"""Everything that travels with exported weights: tokenizer, generation config, prompt template, README."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from tunesmith.core.errors import UserError
from tunesmith.core.export.progress import Progress

TEMPLATE_FILE = "prompt_template.json"
TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def has_tokenizer(folder: Path | str | None) -> bool:
    return bool(folder) and Path(folder).is_dir() and any((Path(folder) / n).is_file() for n in TOKENIZER_MARKERS)


def load_tokenizer(candidates, progress: Progress):
    """The first tokenizer that loads from ``candidates`` (folders or hub ids), or None with a warning."""
    from transformers import AutoTokenizer

    tried = []
    for candidate in candidates:
        if not candidate or candidate in tried:
            continue
        tried.append(candidate)
        if Path(candidate).exists() and not has_tokenizer(candidate):
            continue
        try:
            return AutoTokenizer.from_pretrained(str(candidate))
        except (OSError, ValueError):
            continue
    progress.warn(f"no tokenizer found (looked in: {', '.join(map(str, tried)) or 'nothing'}); "
                  "the output has no tokenizer files.")
    return None


def resolve_template_name(name: str | None, model_name_or_path: str) -> str:
    """Check a template name (``auto`` follows the model family); unknown names list close matches."""
    from tunesmith.core.data.templates import CHAT_TEMPLATE, get_template, resolve_template

    if not name:
        return ""
    resolved = resolve_template(name, model_name_or_path)
    if resolved != CHAT_TEMPLATE:
        get_template(resolved)
    return resolved


def template_record(name: str, tokenizer, default_system: str = "") -> dict:
    """The small JSON describing the prompt template a model was trained with.

    XTuner templates keep their fields; ``chat_template`` keeps the tokenizer's Jinja text.
    """
    from tunesmith.core.data.templates import CHAT_TEMPLATE, get_template, stop_words_for

    record: dict = {"name": name, "default_system": default_system}
    if name == CHAT_TEMPLATE:
        record["chat_template"] = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    else:
        t = get_template(name)
        record.update(system=t.system, instruction=t.instruction, suffix=t.suffix,
                      suffix_as_eos=t.suffix_as_eos, sep=t.sep)
    record["stop_words"] = list(stop_words_for(name, tokenizer)) if tokenizer is not None else []
    return record


def single_token_ids(words, tokenizer) -> list[int]:
    """Token ids of the stop words that are exactly one token (usable as extra EOS ids)."""
    ids = []
    for word in words:
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


def generation_config(sources, model_config, tokenizer, stop_words) -> object:
    """The generation config of the first source that has one, with single-token stop words added as EOS."""
    from transformers import GenerationConfig

    gen = None
    for src in sources:
        if src and (Path(src) / "generation_config.json").is_file():
            gen = GenerationConfig.from_pretrained(str(src))
            break
    if gen is None:
        gen = GenerationConfig.from_model_config(model_config) if model_config is not None else GenerationConfig()
    if tokenizer is not None and stop_words:
        eos = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
        eos = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        eos += [i for i in single_token_ids(stop_words, tokenizer) if i not in eos]
        gen.eos_token_id = eos[0] if len(eos) == 1 else eos
    return gen


def write_run_files(out: Path, info, template: dict | None) -> None:
    """Copy config.yaml and write prompt_template.json."""
    if info is not None and info.config is not None:
        src = info.path / "config.yaml"
        if src.is_file():
            shutil.copyfile(src, out / "config.yaml")
        else:
            info.config.save(out / "config.yaml")
    if template is not None:
        (out / TEMPLATE_FILE).write_text(json.dumps(template, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_template_record(folder: str | Path) -> dict | None:
    path = Path(folder) / TEMPLATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}).", "Delete it or pass --prompt-template.") from None


def final_metrics(run_dir: Path | None) -> dict:
    """Last loss/eval_loss and step from metrics.jsonl (empty when the run has none).

    >>> final_metrics(None)
    {}
    """
    if run_dir is None or not (run_dir / "metrics.jsonl").is_file():
        return {}
    found: dict = {}
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written while we read
        for key in ("loss", "eval_loss", "step", "epoch", "total_steps"):
            if isinstance(row, dict) and row.get(key) is not None:
                found[key] = row[key]
    return found


def write_readme(out: Path, *, name: str, kind: str, info=None, base: str = "", adapter: str = "",
                 template: str = "", dtype: str = "", source: str = "") -> None:
    """A short model card (``out/README.md``) for the folder that will be called ``name``."""
    cfg = info.config if info is not None else None
    lines = [f"# {name}", "", f"Exported by Tunesmith on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
             f"from `{source}`.", ""]
    kind_text = {"adapter": "a PEFT LoRA adapter (load it on top of the base model)",
                 "full": "a full model (fine-tuned weights)",
                 "merged": "a full model: the base with the LoRA adapter merged into its weights"}[kind]
    lines += [f"This folder holds {kind_text}, saved in {dtype}.", "", "| | |", "|---|---|",
              f"| Base model | `{base or (cfg.model.name_or_path if cfg else '?')}` |"]
    if adapter:
        lines.append(f"| Adapter | `{adapter}` |")
    if cfg is not None:
        t, lo = cfg.training, cfg.lora
        lines += [f"| Method | {cfg.method.stage} / {cfg.method.finetuning} |",
                  f"| Data | `{cfg.data.path}` (map_fn {cfg.data.map_fn}, max_length {cfg.data.max_length}, "
                  f"pack {cfg.data.pack}) |",
                  f"| Learning rate | {t.learning_rate} ({t.lr_scheduler}, warmup {t.warmup_ratio}) |",
                  f"| Epochs / max steps | {t.num_epochs} / {t.max_steps} |",
                  f"| Batch | {t.batch_size} x {t.gradient_accumulation} accumulation x {cfg.world_size} "
                  f"process(es) = {cfg.effective_batch_size} |",
                  f"| Precision / seed | {t.precision} / {t.seed} |"]
        ac = info.adapter_config or {}
        if cfg.uses_lora or ac:
            targets = ac.get("target_modules", lo.target_modules)
            targets = ", ".join(map(str, targets)) if isinstance(targets, (list, tuple)) else str(targets)
            lines.append(f"| LoRA | r={ac.get('r', lo.r)}, alpha={ac.get('lora_alpha', lo.alpha)}, "
                         f"dropout={ac.get('lora_dropout', lo.dropout)}, targets={targets} |")
    if template:
        lines.append(f"| Prompt template | `{template}` (see {TEMPLATE_FILE}) |")
    metrics = final_metrics(info.run_dir if info is not None else None)
    if metrics:
        loss = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("loss", "eval_loss") if isinstance(metrics.get(k), float))
        lines.append(f"| Final | step {metrics.get('step', '?')}: {loss or 'no loss logged'} |")
    lines += ["", "## Load it", "", "```python"]
    if kind == "adapter":
        lines += ["from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer",
                  "", "base = AutoModelForCausalLM.from_pretrained(BASE_MODEL_PATH)",
                  f'model = PeftModel.from_pretrained(base, "{name}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{name}")']
    else:
        lines += ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f'model = AutoModelForCausalLM.from_pretrained("{name}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{name}")']
    chat = f"BASE_MODEL_PATH --adapter {name}" if kind == "adapter" else name
    lines += ["```", "", f"Or chat with it: `python -m tunesmith chat {chat}`", ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


def write_companions(folder: Path, *, info, tokenizer, template_name: str, gen_sources, model_config,
                     progress: Progress) -> None:
    """Tokenizer, generation_config.json, config.yaml and prompt_template.json next to the weights."""
    record, stop_words = None, []
    if template_name:
        default_system = info.config.data.system if info is not None and info.config is not None else ""
        record = template_record(template_name, tokenizer, default_system)
        stop_words = record["stop_words"]
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    gen = generation_config(gen_sources, model_config, tokenizer, stop_words)
    try:
        gen.save_pretrained(str(folder))
    except ValueError as exc:  # an inconsistent config inherited from the base: keep the weights usable
        progress.warn(f"generation_config.json not written: {exc}")
    write_run_files(folder, info, record)
