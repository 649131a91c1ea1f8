#!/usr/bin/env bash
# One call on a leased GPU (the device tool of this workplace): the small default candidate
# (gpu_small.sh) and the full-size single-task ablation row (gpu_paper.sh with model.sharing=none,
# 18 epochs like the selective row) trained side by side, since the small network leaves the GPU idle
# between its launches. A lease carries 64 MiB, so FER2013 travels as one tarball made here with
#   tar -czf .carry/fer2013.tar.gz -C ../shared/data fer2013/metadata.csv fer2013/README.md fer2013/train fer2013/test
# and the packages the GPU image lacks as wheels in .whl (see /work/.library/device/README.md). The
# bundled weights (104 MB) would not fit either: move model_core/weights/{default,fer2013_paper_gpu,...}
# out of the checkout for the call and back after it (none of this needs them). The data is unpacked at
# ../shared/data, where the recipes look. $OUT/small and $OUT/none receive each run's shards, card, logs
# and figures.
#   run: bash training/gpu_lease.sh        carry: [.carry, .whl]
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
fersnet() { python3 -m fersnet_cli "$@"; }
export -f fersnet
data=$(cd .. && pwd)/shared/data
mkdir -p "$data" && tar -xzf .carry/fer2013.tar.gz -C "$data" || exit 1
echo "FER2013 at $data/fer2013: $(find "$data/fer2013" -name '*.jpg' | wc -l) images"
mkdir -p "$OUT/small" "$OUT/none"
OUT=$OUT/none RUN=runs/fer2013_paper_none_gpu bash training/gpu_paper.sh --set model.sharing=none \
    --set num_workers=6 --set time_budget_s=300 \
    --set "report=[{dataset: fer2013, root: ../shared/data/fer2013, split: test}]" > "$OUT/none/console.log" 2>&1 &
none=$!
OUT=$OUT/small bash training/gpu_small.sh
small_rc=$?
wait $none
none_rc=$?
echo "small: exit $small_rc; none: exit $none_rc"
tail -5 "$OUT/none/console.log"
