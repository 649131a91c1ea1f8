#!/usr/bin/env bash
# One GPU lease from K-fold teachers to candidate defaults: K teachers side by side, each trained without one fold
# of the Training faces and answering only the faces it never saw (gpu_teachers.sh), their answers averaged into
# soft targets (`python -m training.gpu_teachers targets`), then the students of gpu_distill.sh learning from them.
# Distillation from teachers that trained on the student's own faces lost 1.3-1.6 points of PublicTest (their
# answers there mostly repeat the labels; docs/teachers.md): this is the run that tests the fix, in one lease.
#
#   OUT=runs/kfold_out bash training/gpu_kfold_distill.sh        # on the GPU host, from the project root
#
# Beforehand, where the datasets are, as for gpu_distill.sh but without soft targets (they are made here):
#   python -m training.pack_data                                 # .carry/fer2013.npz
#   python -c "from model_core.checkpoint import load_checkpoint as l, save_checkpoint as s; \
#              m = l('model_core/weights/default'); s('.carry/default', m.model, m.card, half=True)"
# and move what the host does not need out of the checkout for the copy, since only 64 MiB travel with it (the
# bundled weights, the committed teachers' probabilities and the figures; about 59 MiB then, .carry included):
#   mkdir -p /tmp/aside && mv model_core/weights training/teachers docs/figures /tmp/aside/     # and back after
#
#   FOLDS=5  TEACHER_ARCH=vgg  TEACHER_BUDGET_S=240  STUDENT_BUDGET_S=200  RUNS=runs  (PACK, INIT, PYTHON, SUBSET:
#   as for gpu_teachers.sh and gpu_distill.sh; extra arguments go to every network's `train`: `--gamma 2.2 --blur 0.3`
#   trains teachers and students on dim, bright and blurred faces too, which `python -m bench.robustness` found the
#   default weak on; select the students on PublicTest as always, then run that bench on the one chosen)
# With a minute of start-up and scoring for each half, about 9 minutes: inside a 15-minute lease with the
# machine's own start (an estimate until a GPU run measures it: "wall time" twice in the output).
#
# $OUT/teachers/teachers.tar.gz: the teachers' probabilities, table and logs (their weights stay on the host:
# only the probabilities are committed). $OUT/students/: the students' table and probabilities, and their float16
# weights as parts, within what is left of the 8 files and 64 MiB. Back here: untar each as in docs/teachers.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?name the folder to bring back, e.g. OUT=runs/kfold_out}
runs=${RUNS:-runs}
folds=${FOLDS:-5}
arch=${TEACHER_ARCH:-vgg}
specs=""
for ((k = 0; k < folds; k++)); do specs+="$arch:0:$k/$folds "; done

OUT=$out/teachers RUNS=$runs/teachers_kfold TEACHERS=$specs BUDGET_S=${TEACHER_BUDGET_S:-240} MAX_FILES=1 \
    bash training/gpu_teachers.sh "$@" || { echo "the teachers failed: no students trained" >&2; exit 1; }
soft=$runs/soft_targets_kfold.npy
"${PYTHON:-python3}" -m training.gpu_teachers targets --pack "${PACK:-.carry/fer2013.npz}" \
    --teachers "$runs/teachers_kfold/${arch}_s0_f"*"of$folds" --out "$soft" ${SUBSET:+--subset "$SUBSET"} || exit 1
used=$(( ($(stat -c %s "$out/teachers/teachers.tar.gz") >> 20) + 1 ))   # MiB the teachers' answer takes
OUT=$out/students RUNS=$runs/students SOFT=$soft BUDGET_S=${STUDENT_BUDGET_S:-200} MAX_FILES=7 MAX_MIB=$((64 - used)) \
    bash training/gpu_distill.sh "$@"
