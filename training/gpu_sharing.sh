#!/usr/bin/env bash
# The paper's first claim at one budget with three seeds, on one GPU: FERSNet-small on FER2013 with single-task
# (none), hard and selective sharing, each row with seeds 0, 1 and 2, every one of the nine runs the same recipe
# (training/configs/fer2013_ablation_<row>.yaml, every loss, with the GPU batch and learning rate of
# fer2013_small_gpu.yaml) for the same number of epochs, side by side. It brings back no weights: each run's card
# and per-epoch log, and its probabilities on PublicTest and PrivateTest, from which training.sharing_table
# prints the rows and their seed-resampled intervals.
#
#   OUT=runs/sharing_out bash training/gpu_sharing.sh        # on the GPU host, from the project root
#   mkdir -p runs/sharing && tar -xzf runs/sharing_out/sharing.tar.gz -C runs/sharing     # back here
#   python -m training.sharing_table runs/sharing                                          # the table
#
# Beforehand, where the datasets are and pip works (what travels: the checkout with the bundled weights, the
# committed teachers and the figures set aside, .carry/fer2013.npz and .whl/, about 54 MiB):
#   python -m training.pack_data                   # .carry/fer2013.npz; unpacked there into FER2013's folders
#   bash bench/host_wheels.sh                      # .whl/: pydantic and the rest the trainer needs beyond PyTorch
#   mkdir -p /tmp/aside && mv model_core/weights training/teachers docs/figures /tmp/aside/     # and back after
#
#   EPOCHS=15 (every run; BUDGET_S=360 s of training caps each run, and a run it cuts says so in its log: about
#   7.5 minutes in all with start-up, decoding and scoring, an estimate until a GPU run measures it)
#   SEEDS="0 1 2"  ROWS="none hard selective"  RUNS=runs/sharing  PACK=.carry/fer2013.npz  PYTHON=python3
#   DATA=<where FER2013's folders are, or are unpacked to>  SUBSET=N (smoke runs: N faces a split)
#   extra arguments go to every `fersnet train` (e.g. --set num_workers=2)
#
# CPU dry run (two rows, one seed, a few steps; what tests/training/test_gpu_sharing.py runs on fake data):
#   OUT=/tmp/sharing_out RUNS=/tmp/sharing DATA=/tmp/sharing_data/fer2013 ROWS="none selective" SEEDS=0 SUBSET=64 \
#       DEVICE=cpu EPOCHS=1 bash training/gpu_sharing.sh --set max_steps_per_epoch=2 --set optim.batch_size=8
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?name the folder to bring back, e.g. OUT=runs/sharing_out}
runs=${RUNS:-runs/sharing}
pack=${PACK:-.carry/fer2013.npz}
py=${PYTHON:-python3}
# shellcheck source=bench/with_wheels.sh
. bench/with_wheels.sh
with_wheels pydantic yaml || exit $?
data=${DATA:-$( [ -d ../shared/data/fer2013/train ] && echo ../shared/data/fer2013 || echo /tmp/fersnet-data/fer2013 )}
if [ ! -d "$data/train" ]; then
    "$py" -m training.pack_data --out "$pack" --unpack "$data" ${SUBSET:+--subset "$SUBSET"} || exit 2
fi
mkdir -p "$runs" "$out"
# shellcheck source=training/side_by_side.sh
. training/side_by_side.sh
gpu_report "$runs/gpu.txt"
fer() { echo "{dataset: fer2013, root: $data, split: $1}"; }
start=$(date +%s)
pids=() names=()
for seed in ${SEEDS:-0 1 2}; do
    for row in ${ROWS:-none hard selective}; do
        name=${row}_s$seed
        rm -rf "${runs:?}/$name" && mkdir -p "$runs/$name"
        (
            "$py" -m fersnet_cli train --config "training/configs/fer2013_ablation_$row.yaml" \
                --set name="$name" --set out_dir="$runs/$name" --set seed="$seed" --set device="${DEVICE:-cuda}" \
                --set optim.epochs="${EPOCHS:-15}" --set optim.batch_size=128 --set optim.lr=0.003 \
                --set optim.warmup_epochs=2 --set time_budget_s="${BUDGET_S:-360}" --set num_workers=1 \
                --set figures=false --set progress=false \
                --set "train=[$(fer train)]" --set "val=$(fer val)" --set "report=[$(fer test)]" "$@" \
                && for split in val test; do
                    "$py" -m fersnet_cli teacher-targets --checkpoint "$runs/$name/best" --dataset fer2013 \
                        --root "$data" --split "$split" --out "$runs/$name/$split.csv" --device "${DEVICE:-cuda}" \
                        && gzip -f "$runs/$name/$split.csv" || exit 1
                done
        ) > "$runs/$name/console.log" 2>&1 &
        pids+=($!) names+=("$name")
    done
done
failed=0
for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
        echo "${names[$i]}: done"; grep -h "PrivateTest\|epochs fit\|cut" "$runs/${names[$i]}/console.log" | tail -n 2
    else
        echo "${names[$i]}: FAILED"; tail -n 25 "$runs/${names[$i]}/console.log"; failed=1
    fi
done
echo "training and scoring: $(( $(date +%s) - start )) s"
# Everything small each run left (never its weights), in one file.
(cd "$runs" && find . -maxdepth 3 \( -path './*/best/card.json' -o -name metrics.jsonl -o -name '*.csv.gz' \
    -o -name console.log -o -name gpu.txt \) -print0 | tar -czf - --null -T -) > "$out/sharing.tar.gz"
echo "$out/sharing.tar.gz: $(du -h "$out/sharing.tar.gz" | cut -f1); wall time: $(( $(date +%s) - start )) s"
"$py" -m training.sharing_table "$runs" --root "$data" | tee "$out/sharing.md"
[ $failed -eq 0 ]
