#!/usr/bin/env bash
# Train one recipe on a GPU host and leave under $OUT what the host returns: the weights cut into 15 MiB
# shards (so that every file stays under 16 MiB), run.tar.gz (the cards, the training log, the per-epoch
# log, the figures) and model.sha256. gpu_paper.sh and gpu_small.sh call it with their recipes.
#
#   CONFIG=training/configs/NAME.yaml RUN=runs/NAME OUT=runs/NAME_out [HALF=1] [SHARDS_NOW=N] \
#       bash training/gpu_train.sh [--set KEY=VALUE ...]
#
# HALF=1 exports float16 weights to $RUN/half first and shards those. SHARDS_NOW copies only the first
# N shards to $OUT (default: all); the rest stay in $RUN/shards for a second command to return. Put the shards
# beside the card of the weights they came from: load_checkpoint joins them and checks the sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${CONFIG:?name the recipe, e.g. CONFIG=training/configs/fer2013_paper_gpu.yaml}
run=${RUN:?name the run folder, e.g. RUN=runs/fer2013_paper_gpu}
out=${OUT:?name the folder to bring back, e.g. OUT=runs/gpu_out}
mkdir -p "$(dirname "$run")" "$out"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$run.gpu.txt"
start=$(date +%s)
PYTHONUNBUFFERED=1 fersnet train --config "$config" --set out_dir="$run" --set progress=false "$@" 2>&1 | tee "$run.train.log"
echo "wall time: $(( $(date +%s) - start )) s" | tee -a "$run.train.log"
weights=$run/best
packed=("$run.train.log" "$run/metrics.jsonl" "$run/best/card.json" "$run/figures")
if [ "${HALF:-0}" = 1 ]; then
    fersnet export --checkpoint "$run/best" --out "$run/half" --half
    weights=$run/half
    packed+=("$run/half/card.json")
fi
if [ -f "$run.gpu.txt" ]; then packed+=("$run.gpu.txt"); fi
rm -rf "$run/shards" && mkdir -p "$run/shards"
split -b 15M -d "$weights/model.safetensors" "$run/shards/model.safetensors.part-"
tar -czf "$out/run.tar.gz" "${packed[@]}"
ls "$run"/shards/* | head -n "${SHARDS_NOW:-1000}" | xargs -I{} cp {} "$out/"
sha256sum "$weights/model.safetensors" | tee "$out/model.sha256"
ls -l "$out" "$run/shards"
