#!/usr/bin/env bash
# Train the paper's full-size FERSNet on one GPU in under 10 minutes, and bring back what it made.
#
#   bash training/gpu_paper.sh                      # on the GPU host, from the project root
#   RUN=runs/gpu_dry_run OUT=runs/gpu_dry bash training/gpu_paper.sh --set optim.epochs=1 --set device=cpu \
#        --set max_steps_per_epoch=2 --set optim.batch_size=4 --set num_workers=0 --set val=null \
#        --set select=last --set "report=[]"           # the CPU dry run that checks the script (two steps)
#
# Needs ../shared/data/fer2013 (and ferplus for the FER+ report). Writes the run to runs/fer2013_paper_gpu
# (or $RUN) and leaves in $OUT (default runs/gpu_out) run.tar.gz (model cards, training log, per-epoch log,
# figures) and the float16 weights cut into 15 MiB shards (reassemble: cat model.safetensors.part-* > model.safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu_out}
run=${RUN:-runs/fer2013_paper_gpu}
mkdir -p "$(dirname "$run")"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$run.gpu.txt"
start=$(date +%s)
fersnet train --config training/configs/fer2013_paper_gpu.yaml --set out_dir="$run" "$@" 2>&1 | tr '\r' '\n' | grep -v '^epoch .*it/s' | tee "$run.train.log"
echo "wall time: $(( $(date +%s) - start )) s" | tee -a "$run.train.log"
fersnet export --checkpoint "$run/best" --out "$run/half" --half
# $OUT brings back at most 8 files of 16 MiB: the weights in six shards, everything else in one archive.
mkdir -p "$out"
tar -czf "$out/run.tar.gz" $(ls "$run".gpu.txt 2>/dev/null) "$run.train.log" "$run/metrics.jsonl" "$run/best/card.json" "$run/half/card.json" "$run/figures"
split -b 15M -d "$run/half/model.safetensors" "$out/model.safetensors.part-"
ls -l "$out"
