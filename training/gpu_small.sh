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
CONFIG=training/configs/fer2013_small_gpu.yaml RUN=${RUN:-runs/fer2013_small_gpu} OUT=${OUT:-runs/gpu_small_out} \
    exec bash "$(dirname "$0")/gpu_train.sh" "$@"
