"""``convert gguf``: a run, checkpoint, adapter or merged folder -> one GGUF file + an Ollama Modelfile.

The work is llama.cpp's own: its ``convert_hf_to_gguf.py`` (with the ``gguf-py`` and ``conversion/``
it ships) writes the 16/32-bit or Q8_0 file, and ``llama_model_quantize`` from llama-cpp-python makes
the k-quants (Q4_K_M, ...). The converter is not part of the llama-cpp-python wheel, only of its
source distribution, so the first use extracts those files from the sdist of the installed version
into ``TUNESMITH_HOME/llama.cpp/`` (``pip download`` fetches the sdist, from pip's cache when it built
the wheel here). ``TUNESMITH_LLAMA_CPP`` may point at a llama.cpp checkout instead.

Adapters are merged first (tunesmith.core.export.merge), full checkpoints are cleaned first (tunesmith.core.export.convert),
in a work folder inside the hidden staging folder, so nothing is left behind on failure. The run's
prompt template goes into the GGUF as a Jinja chat template (llama.cpp, LM Studio) and into the
Modelfile as a Go template (Ollama), with its stop words.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tunesmith.core.errors import UserError, close_matches
from tunesmith.core.export.progress import Progress, ProgressFn

# name -> (converter --outtype, llama.cpp ftype constant for llama_model_quantize or None)
QUANTS = {
    "f32": ("f32", None), "f16": ("f16", None), "bf16": ("bf16", None), "q8_0": ("q8_0", None),
    "q6_k": ("f16", "Q6_K"), "q5_k_m": ("f16", "Q5_K_M"), "q5_k_s": ("f16", "Q5_K_S"),
    "q4_k_m": ("f16", "Q4_K_M"), "q4_k_s": ("f16", "Q4_K_S"), "q3_k_m": ("f16", "Q3_K_M"),
    "q3_k_l": ("f16", "Q3_K_L"), "q2_k": ("f16", "Q2_K"), "q5_0": ("f16", "Q5_0"), "q4_0": ("f16", "Q4_0"),
    "iq4_xs": ("f16", "IQ4_XS"),
}
# bytes per weight, for the free-space check and the size estimate shown before a long export
BYTES_PER_WEIGHT = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 1.07, "q6_k": 0.82, "q5_k_m": 0.71,
                    "q5_k_s": 0.69, "q4_k_m": 0.61, "q4_k_s": 0.57, "q3_k_m": 0.49, "q3_k_l": 0.53, "q2_k": 0.41,
                    "q5_0": 0.69, "q4_0": 0.57, "iq4_xs": 0.54}
CONVERTER_ENV = "TUNESMITH_LLAMA_CPP"
CONVERTER_FILES = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
MODELFILE = "Modelfile"


def check_quant(quant: str) -> tuple[str, str | None]:
    key = (quant or "").lower()
    if key not in QUANTS:
        raise UserError(f"unknown GGUF type '{quant}'.", close_matches(key, QUANTS), field="quant")
    return QUANTS[key]


# ---- llama.cpp's converter ------------------------------------------------------------------------

def _llama_cpp_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        raise UserError("GGUF export needs llama-cpp-python (its llama.cpp converter and quantiser), which is not "
                        "installed.", "pip install llama-cpp-python (it compiles llama.cpp: a few minutes).") from None


def converter_dir(*, fetch: bool = True) -> Path:
    """The folder holding llama.cpp's convert_hf_to_gguf.py (extracted once from the sdist of the installed
    llama-cpp-python, so converter and quantiser come from the same llama.cpp)."""
    custom = os.environ.get(CONVERTER_ENV)
    if custom:
        path = Path(custom).expanduser()
        if not (path / "convert_hf_to_gguf.py").is_file():
            raise UserError(f"{CONVERTER_ENV}={custom} has no convert_hf_to_gguf.py.",
                            f"Point {CONVERTER_ENV} at a llama.cpp checkout, or unset it.")
        return path
    from tunesmith.core.paths import home

    version = _llama_cpp_version()
    target = home() / "llama.cpp" / f"llama-cpp-python-{version}"
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    if not fetch:
        raise UserError("llama.cpp's converter has not been extracted yet.", "Run `python -m tunesmith convert gguf` once "
                        "with network access (or pip's cache holding the llama-cpp-python sdist).")
    with tempfile.TemporaryDirectory() as tmp:
        sdist = _download_sdist(version, Path(tmp))
        _extract_converter(sdist, target)
    return target


def _download_sdist(version: str, folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
           "-q", "-d", str(folder), f"llama-cpp-python=={version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 and not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        raise UserError(f"cannot fetch llama.cpp's converter (the llama-cpp-python {version} source): {tail[0]}",
                        f"Connect to PyPI once, or set {CONVERTER_ENV} to a llama.cpp checkout.")
    return found[0]


def _extract_converter(sdist: Path, target: Path) -> None:
    """Copy convert_hf_to_gguf.py, conversion/ and gguf-py/ of the vendored llama.cpp into ``target``."""
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            rel = m.name.split("/vendor/llama.cpp/", 1)
            if len(rel) == 2 and any(rel[1] == f or (f.endswith("/") and rel[1].startswith(f))
                                     for f in CONVERTER_FILES) and (m.isfile() or m.isdir()):
                m.name = rel[1]
                members.append(m)
        if not any(m.name == "convert_hf_to_gguf.py" for m in members):
            raise UserError(f"{sdist.name} holds no vendor/llama.cpp/convert_hf_to_gguf.py.",
                            f"Set {CONVERTER_ENV} to a llama.cpp checkout.")
        tar.extractall(partial, members=members, filter="data")
    os.replace(partial, target)


# ---- from SRC to a clean Hugging Face folder --------------------------------------------------------

def _hf_folder(src, work: Path, report: Progress, template: str | None):
    """(folder to convert, CheckpointInfo or None, template name, system text) for SRC."""
    from tunesmith.core.export.extras import has_tokenizer, read_template_record, resolve_template_name
    from tunesmith.core.export.source import inspect_checkpoint

    path = Path(src).expanduser()
    if path.is_file():
        raise UserError(f"{src} is a file.", "Give a run folder, a checkpoint, an adapter folder or a merged model "
                        "folder (a .gguf file is already GGUF).")
    info = inspect_checkpoint(path)
    system = info.config.data.system if info.config is not None else ""
    if info.kind == "adapter":
        from tunesmith.core.export.merge import merge_adapter

        report(0.05, f"merging the adapter {info.path.name} into {info.base_model}")
        folder = merge_adapter(info.base_model, info.path, work / "merged", dtype="fp16", template=template,
                               progress=lambda f, m: report(0.05 + 0.3 * f, f"merge: {m}"))
    elif info.run_dir is not None or not info.has_weights or not has_tokenizer(info.path):
        from tunesmith.core.export.convert import convert_to_hf

        report(0.05, f"cleaning the checkpoint {info.path.name}")
        folder = convert_to_hf(info.path, work / "model", dtype="fp16", template=template,
                               progress=lambda f, m: report(0.05 + 0.3 * f, f"convert: {m}"))
    else:
        folder = info.path  # already a clean model folder (e.g. `convert merge` output): converted as it is
    record = read_template_record(folder) or {}
    name = template or record.get("name") or (info.config.data.template if info.config is not None and
                                              info.config.method.stage != "pretrain" else "")
    name = resolve_template_name(name, info.base_model or str(folder)) if name else ""
    return Path(folder), info, name, system or record.get("default_system") or ""


def _with_chat_template(folder: Path, work: Path, template: str, report: Progress):
    """(folder for the converter, tokenizer, layout, template name): the run's template as the tokenizer's Jinja.

    The user's folder is never changed: a view of it (weights linked, tokenizer files copied) is made
    in the work folder when the template must be written.
    """
    from transformers import AutoTokenizer

    from tunesmith.core.data.templates import CHAT_TEMPLATE, has_chat_template
    from tunesmith.core.export.chat_layout import layout_for

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not template and has_chat_template(tokenizer):
        template = CHAT_TEMPLATE  # no run template recorded: the model's own is what it was tuned with
    if not template:
        return folder, tokenizer, None, ""
    layout = layout_for(template, tokenizer)
    if template == CHAT_TEMPLATE or layout is None:
        if layout is None:
            report.warn(f"template {template} has no fixed layout (it changes with the round number); the GGUF "
                        "keeps the tokenizer's own chat template and the Modelfile gets none.")
        return folder, tokenizer, layout, template
    view = work / "with-template"
    view.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        if item.is_file() and not item.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            os.symlink(item.resolve(), view / item.name)
    tokenizer.chat_template = layout.jinja()
    tokenizer.save_pretrained(str(view))
    return view, tokenizer, layout, template


def _convert(converter: Path, folder: Path, out_file: Path, outtype: str, name: str, report: Progress,
             lo: float, hi: float) -> None:
    from tunesmith.core.export.weights import safetensors_shapes

    total = max(1, len(safetensors_shapes(folder)))
    cmd = [sys.executable, str(converter / "convert_hf_to_gguf.py"), str(folder), "--outfile", str(out_file),
           "--outtype", outtype, "--model-name", name]
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}  # its own gguf-py, matching the converter
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines, done = [], 0
    tensor_line = re.compile(r"^INFO:hf-to-gguf:(\S+),\s+torch\.")
    for line in proc.stdout:
        lines.append(line.rstrip())
        del lines[:-40]
        if tensor_line.match(line):
            done += 1
            report(lo + (hi - lo) * min(1.0, done / total), f"llama.cpp converter: {done}/{total} tensors")
    if proc.wait() != 0:
        problem = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
        if "not supported" in problem or "NotImplementedError" in problem:
            raise UserError(f"llama.cpp's converter does not support this model: {problem.strip()}",
                            "Check `python convert_hf_to_gguf.py --print-supported-models` for the architectures "
                            "llama.cpp knows; export a Hugging Face folder instead.")
        raise RuntimeError(f"convert_hf_to_gguf.py failed (exit {proc.returncode}): {problem.strip()}\n"
                           + "\n".join(lines[-15:]))


def _quantize(src: Path, dst: Path, ftype_name: str) -> None:
    import logging

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype_name}")
    params.nthread = max(1, (os.cpu_count() or 1))
    log = logging.getLogger("llama-cpp-python")  # llama.cpp's log goes through it: one line per tensor otherwise
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        code = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    finally:
        log.setLevel(level)
    if code != 0 or not dst.is_file():
        raise RuntimeError(f"llama_model_quantize to {ftype_name} failed (code {code})")


# ---- the Modelfile ----------------------------------------------------------------------------------

def modelfile_text(gguf_name: str, *, layout=None, stop_words=(), system: str = "", template: str = "") -> str:
    """An Ollama Modelfile: ``ollama create NAME -f Modelfile`` next to the GGUF.

    >>> print(modelfile_text("m-q8_0.gguf", stop_words=["<|im_end|>"]))  # doctest: +ELLIPSIS
    # Ollama Modelfile written by Tunesmith...
    FROM ./m-q8_0.gguf
    ...
    PARAMETER stop "<|im_end|>"
    <BLANKLINE>
    """
    lines = [f"# Ollama Modelfile written by Tunesmith. Create the model with: ollama create NAME -f {MODELFILE}",
             f"FROM ./{gguf_name}"]
    if layout is not None:
        lines.append(f"# prompt template: {template or 'the tokenizer chat template'} (as a Go template)")
        lines.append(f'TEMPLATE """{layout.go()}"""')
    else:
        lines.append("# no fixed prompt layout could be written: Ollama uses the chat template stored in the GGUF")
    if system:
        lines.append(f'SYSTEM """{system}"""')
    for word in stop_words:
        lines.append(f"PARAMETER stop {_go_quote(word)}")
    return "\n".join(lines) + "\n"


def _go_quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


# ---- the export ---------------------------------------------------------------------------------------

def gguf_file_name(name: str, quant: str) -> str:
    """
    >>> gguf_file_name("my run", "Q4_K_M")
    'my_run-q4_k_m.gguf'
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-") or "model"
    return f"{safe}-{quant.lower()}.gguf"


def convert_gguf(src, out_dir, *, quant: str = "q8_0", template: str | None = None, overwrite: bool = False,
                 name: str | None = None, progress: ProgressFn | None = None) -> Path:
    """Write OUT_DIR/NAME-QUANT.gguf and OUT_DIR/Modelfile from SRC; return the GGUF's path."""
    from tunesmith.core.data.templates import stop_words_for
    from tunesmith.core.export.source import resolve_checkpoint
    from tunesmith.core.export.staging import check_free_space, check_output_dir, staged_output
    from tunesmith.core.export.weights import numel, safetensors_shapes

    report = Progress(progress)
    outtype, ftype = check_quant(quant)
    quant = quant.lower()
    path, run_dir = resolve_checkpoint(src)
    out = check_output_dir(out_dir, overwrite=overwrite, inputs=(path,), protect=(run_dir,))
    report(0.01, "finding llama.cpp's converter")
    converter = converter_dir()
    label = name or (run_dir.name if run_dir is not None else path.name)
    file_name = gguf_file_name(label, quant)
    with staged_output(out) as tmp:
        work = tmp / ".work"
        work.mkdir()
        folder, info, template_name, system = _hf_folder(src, work, report, template)
        weights = sum(numel(s) for s in safetensors_shapes(folder).values())
        check_free_space(tmp, int(weights * (2.0 + BYTES_PER_WEIGHT[quant])))
        view, tokenizer, layout, template_name = _with_chat_template(folder, work, template_name, report)
        target = tmp / file_name
        first = target if ftype is None else work / f"{Path(file_name).stem}-{outtype}.gguf"
        report(0.36, f"converting with llama.cpp ({outtype})")
        _convert(converter, view, first, outtype, label, report, 0.36, 0.85 if ftype is None else 0.7)
        if ftype is not None:
            report(0.72, f"quantising to {quant.upper()} with llama.cpp")
            _quantize(first, target, ftype)
        shutil.rmtree(work)
        stops = stop_words_for(template_name, tokenizer) if template_name else (
            [tokenizer.eos_token] if tokenizer.eos_token else [])
        report(0.95, f"writing {MODELFILE}")
        (tmp / MODELFILE).write_text(modelfile_text(file_name, layout=layout, stop_words=stops, system=system,
                                                    template=template_name), encoding="utf-8")
    result = out / file_name
    report.done(f"wrote {result} ({result.stat().st_size / 2**20:.1f} MiB)")
    return result
