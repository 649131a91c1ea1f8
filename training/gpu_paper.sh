#!/usr/bin/env bash
# Train the paper's full-size FERSNet on one GPU in under 10 minutes, and bring back what it made.
#
#   bash training/gpu_paper.sh                      # on the GPU host, from the project root
#   bash training/gpu_paper.sh --set "train=[{dataset: fer2013, root: DIR, split: train}]" ...   # data elsewhere
#
# The CPU dry run that checks the script end to end (tiny data, one step, a budget that cuts 2 epochs to 1):
#   RUN=runs/gpu_dry_run OUT=runs/gpu_dry bash training/gpu_paper.sh --set device=cpu --set optim.epochs=2 \
#        --set max_steps_per_epoch=1 --set optim.batch_size=2 --set num_workers=0 --set time_budget_s=1 \
#        --set "train=[{dataset: fer2013, root: DIR, split: train}]" --set "val={dataset: fer2013, root: DIR, split: val}" \
#        --set "report=[{dataset: fer2013, root: DIR, split: test}]"
#
# Needs ../shared/data/fer2013 (and ferplus for the FER+ report) unless --set points elsewhere. Writes the run
# to runs/fer2013_paper_gpu (or $RUN). The float16 weights (82 MB) are cut into 15 MiB shards in $RUN/shards.
# $OUT (default runs/gpu_out) receives run.tar.gz (model cards, training log, per-epoch log, figures) and the
# first $SHARDS_NOW shards (default 4, so that $OUT stays within 64 MiB); a second command on the host returns the rest:
#   cp $RUN/shards/model.safetensors.part-0[4-9] $OUT/
# Put the shards beside the exported card.json ($RUN/half/card.json): load_checkpoint joins them itself and checks
# the sha256 (model_core/weights/fer2013_paper_gpu/ is such a folder).
set -euo pipefail
CONFIG=training/configs/fer2013_paper_gpu.yaml RUN=${RUN:-runs/fer2013_paper_gpu} OUT=${OUT:-runs/gpu_out} HALF=1 \
    SHARDS_NOW=${SHARDS_NOW:-4} exec bash "$(dirname "$0")/gpu_train.sh" "$@"
