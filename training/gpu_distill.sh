#!/usr/bin/env bash
# Distil the teachers into FERSNet students on one GPU, side by side, in about six minutes, and leave under $OUT
# the students' probabilities, their table (each alone) and their float16 weights: candidate defaults.
#
#   OUT=runs/students_out bash training/gpu_distill.sh          # on the GPU host, from the project root
#
# Beforehand, where the datasets and the teachers' probabilities are (see docs/teachers.md):
#   python -m training.pack_data                                 # .carry/fer2013.npz
#   python -m training.gpu_teachers targets --teachers training/teachers/0[2-6]_*   # .carry/soft_targets.npy
#   python -c "from model_core.checkpoint import load_checkpoint as l, save_checkpoint as s; \
#              m = l('model_core/weights/default'); s('.carry/default', m.model, m.card, half=True)"
# The GPU host receives the checkout plus .carry/ (64 MiB in all): move what it does not need out of the checkout
# for the copy (mkdir -p /tmp/aside && mv model_core/weights training/teachers docs/figures /tmp/aside/, and back
# after; about 59 MiB travel then).
#
# Students (name, then the arguments of `python -m training.gpu_teachers train`):
#   default_kd_s0/s1  the bundled default, distilled from the teachers (labels 0.2, teachers 0.8, T 2)
#   default_ce_s0     the bundled default, trained further on the labels alone: what the teachers add
#   scratch_kd_s0     the default's network from scratch, distilled: what starting from the default adds
# Each is the whole FERSNet (synthesis decoder included), so `init_from` in a recipe can take it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?name the folder to bring back, e.g. OUT=runs/students_out}
runs=${RUNS:-runs/students}
pack=${PACK:-.carry/fer2013.npz}
soft=${SOFT:-.carry/soft_targets.npy}
init=${INIT:-.carry/default}
py=${PYTHON:-python3}
subset=(); [ -n "${SUBSET:-}" ] && subset=(--subset "$SUBSET")
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
for f in "$pack" "$soft" "$init/card.json"; do
    [ -f "$f" ] || { echo "no $f: see the top of $0 for how to make it (and carry .carry)" >&2; exit 2; }
done
budget=${BUDGET_S:-240}
# shellcheck source=training/side_by_side.sh
. training/side_by_side.sh
side_by_side "default_ce_s0=--init $init --seed 0" \
    "default_kd_s0=--init $init --soft-targets $soft --seed 0" \
    "default_kd_s1=--init $init --soft-targets $soft --seed 1" \
    "scratch_kd_s0=--arch small_selective --soft-targets $soft --seed 0" -- "$@"
