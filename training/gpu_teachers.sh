#!/usr/bin/env bash
# Train several diverse teacher classifiers side by side on one GPU in under eight minutes, and leave under
# $OUT their probabilities on every FER2013 and FER+ face, the ensemble's accuracy table, and their weights.
#
#   OUT=runs/teachers_out bash training/gpu_teachers.sh          # on the GPU host, from the project root
#
# The GPU host receives the checkout plus .carry/ (64 MiB in all). Beforehand, where the datasets are:
#   python -m training.pack_data     # ../shared/data -> .carry/fer2013.npz (43 MiB: FER2013's JPEGs + FER+'s labels)
# and move what the host does not need out of the checkout for the copy, since only 64 MiB travel with the working
# tree (the bundled weights, the committed teachers' probabilities, the figures; nothing here needs them):
#   mkdir -p /tmp/aside && mv model_core/weights training/teachers docs/figures /tmp/aside/     # and back after
# The GPU image's python3 has PyTorch, NumPy, Pillow and safetensors, all this needs: nothing is installed.
#
# One process per teacher, all at once: small networks leave a GPU idle between their kernel launches, so several
# fill it better than one after another, and one teacher's failure leaves the others. Each trains for $BUDGET_S
# seconds of wall-clock (its learning-rate schedule is fitted to that), is scored on PublicTest after every
# epoch (the best averaged weights are kept) and then scores every face. About a minute more goes on start-up
# (decoding the pack, CUDA) and the final scoring, so the default 330 s should end inside 7 minutes
# (an estimate until a GPU run measures it: see "wall time" at the end of the output).
#
#   TEACHERS="vgg:0 vgg:1 resnet18:0 small:0"   ARCH:SEED pairs (architectures: model_core/train/teacher_nets.py),
#            or ARCH:SEED:FOLD/FOLDS for K-fold teachers, each trained without one fold of the Training faces and
#            answering only the faces it never saw: TEACHERS="vgg:0:0/5 vgg:0:1/5 vgg:0:2/5 vgg:0:3/5 vgg:0:4/5"
#            (then `python -m training.gpu_teachers targets --teachers ...` gives every face an unseen teacher's answer)
#   BUDGET_S=330  PACK=.carry/fer2013.npz  RUNS=runs/teachers  PYTHON=python3  SUBSET=N (smoke runs: N faces a split)
#   extra arguments go to every `python -m training.gpu_teachers train` (e.g. --compile, --batch-size 512)
#
# $OUT receives teachers.tar.gz (per teacher: fer2013.csv.gz, ferplus.csv.gz, summary.json, log.jsonl,
# command.txt, console.log, its card; ensemble.md and ensemble.json; gpu.txt) and weights.tar.part-NN
# (the float16 weights, best first, as many as fit in 64 MiB with the rest). Back here:
#   mkdir -p runs/teachers_gpu && tar -xzf teachers.tar.gz -C runs/teachers_gpu
#   cat weights.tar.part-* | tar -x -C runs/teachers_gpu
# then copy a teacher's *.csv.gz and command.txt into training/teachers/NN_name/ (see docs/teachers.md).
#
# CPU dry run (a few steps on a subset; what tests/training/test_gpu_teachers.py runs on fake data):
#   OUT=runs/teachers_dry_out RUNS=runs/teachers_dry TEACHERS="tiny:0 small:0" BUDGET_S=20 SUBSET=200 \
#       bash training/gpu_teachers.sh --device cpu --threads 1 --max-steps 3 --batch-size 16
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?name the folder to bring back, e.g. OUT=runs/teachers_out}
runs=${RUNS:-runs/teachers}
pack=${PACK:-.carry/fer2013.npz}
py=${PYTHON:-python3}
teachers=${TEACHERS:-vgg:0 vgg:1 resnet18:0 small:0}
subset=(); [ -n "${SUBSET:-}" ] && subset=(--subset "$SUBSET")
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ -f "$pack" ] || { echo "no $pack: make it with python -m training.pack_data (and carry .carry)" >&2; exit 2; }
budget=${BUDGET_S:-330}
jobs=()
for spec in $teachers; do
    IFS=: read -r arch seed fold <<< "$spec"
    if [ -n "$fold" ]; then  # ARCH:SEED:FOLD/FOLDS, a K-fold teacher
        jobs+=("${arch}_s${seed}_f${fold%/*}of${fold#*/}=--arch $arch --seed $seed --fold ${fold%/*} --folds ${fold#*/}")
    else
        jobs+=("${arch}_s${seed}=--arch $arch --seed $seed")
    fi
done
# shellcheck source=training/side_by_side.sh
. training/side_by_side.sh
side_by_side "${jobs[@]}" -- "$@"
