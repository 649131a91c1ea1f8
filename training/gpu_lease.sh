#!/usr/bin/env bash
# Two trainings side by side on one GPU host: the default's network (gpu_small.sh) and the full-size
# single-task ablation row (gpu_paper.sh with model.sharing=none, 18 epochs like the selective row), since
# the small network leaves the GPU idle between its launches.
#
#   OUT=runs/lease_out bash training/gpu_lease.sh      # on the GPU host, from the project root
#
# For a GPU host that has this checkout but neither the datasets nor the package's dependencies: it installs the
# wheels found in .whl/ (pydantic and what it needs, where the host's Python lacks them) and unpacks FER2013 from
# .carry/fer2013.tar.gz at ../shared/data, where the recipes look. Make that archive where the datasets are:
#   tar -czf .carry/fer2013.tar.gz -C ../shared/data fer2013/metadata.csv fer2013/README.md fer2013/train fer2013/test
# (The bundled weights are not needed here; leave model_core/weights out of the copy if it must be small.)
# $OUT/small and $OUT/none receive each run's shards, card, logs and figures (files of at most 16 MiB).
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
