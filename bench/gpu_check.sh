#!/usr/bin/env bash
# GPU check for issue 11 (under 8 minutes on one GPU, no downloads): Llama-2-7B-shaped QLoRA at XTuner's
# defaults (r 64 all-linear, 2048 packed tokens, batch 1, checkpointing, paged 8-bit AdamW), our engine vs
# plain HF Trainer + PEFT + bitsandbytes on identical batches: peak max_memory_allocated and nvidia-smi
# against the estimate, and tokens/s. Each run is its own process (clean peak and allocator figures).
#   bash bench/gpu_check.sh [WORK_DIR]        (default /tmp/gpu_check; about 14 GB of disk for the model)
#   bash bench/gpu_check.sh --dry-run         (tiny model on the CPU: checks the script, no GPU figures)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DRY=""
if [[ "${1:-}" == "--dry-run" ]]; then DRY="--dry-run"; shift; fi
DIR=${1:-/tmp/gpu_check$([[ -n $DRY ]] && echo -dry)}
rm -rf "$DIR" && mkdir -p "$DIR"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [[ -z $DRY ]]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
start=$SECONDS
"$PY" bench/gpu_check.py make "$DIR" $DRY
echo "model built and saved: $((SECONDS - start)) s"
"$PY" bench/gpu_check.py run "$DIR" ours $DRY | tail -1
echo "ours done: $((SECONDS - start)) s"
"$PY" bench/gpu_check.py run "$DIR" baseline $DRY | tail -1
echo "baseline done: $((SECONDS - start)) s"
"$PY" bench/gpu_check.py report "$DIR" | tee "$DIR/report.txt"
[[ -n $DRY ]] || rm -rf "$DIR"/model*.safetensors   # 13 GB of random weights
echo "total: $((SECONDS - start)) s"
