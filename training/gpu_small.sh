#!/usr/bin/env bash
# Train the default model's network (fer2013_small_gpu.yaml) on one GPU in about 6 minutes, and bring
# back what it made: the float32 model cut into 15 MiB shards, the card, the logs and the figures.
#
#   bash training/gpu_small.sh [--set KEY=VALUE ...]     # on the GPU host, from the project root
#
# CPU dry run (tiny budget, one step an epoch):
#   RUN=runs/gpu_small_dry OUT=runs/gpu_small_dry_out bash training/gpu_small.sh --set device=cpu \
#        --set max_steps_per_epoch=1 --set optim.batch_size=4 --set num_workers=0 --set optim.epochs=2
#
# Writes the run to runs/fer2013_small_gpu (or $RUN); $OUT (default runs/gpu_small_out) receives
# run.tar.gz (cards, logs, figures), model.sha256 and the shards model.safetensors.part-NN. Put the
# shards beside the card (cp $RUN/best/card.json): load_checkpoint joins them and checks the sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu_small_out}
run=${RUN:-runs/fer2013_small_gpu}
mkdir -p "$(dirname "$run")" "$out"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$run.gpu.txt"
start=$(date +%s)
PYTHONUNBUFFERED=1 fersnet train --config training/configs/fer2013_small_gpu.yaml --set out_dir="$run" --set progress=false "$@" 2>&1 \
    | tee "$run.train.log"
echo "wall time: $(( $(date +%s) - start )) s" | tee -a "$run.train.log"
rm -rf "$run/shards" && mkdir -p "$run/shards"
split -b 15M -d "$run/best/model.safetensors" "$run/shards/model.safetensors.part-"
tar -czf "$out/run.tar.gz" $(ls "$run".gpu.txt 2>/dev/null) "$run.train.log" "$run/metrics.jsonl" "$run/best/card.json" "$run/figures"
cp "$run"/shards/* "$out/"
sha256sum "$run/best/model.safetensors" | tee "$out/model.sha256"
ls -l "$out"
