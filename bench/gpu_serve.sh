#!/usr/bin/env bash
# The serving benchmark on a GPU host, in one command: faces/s through HTTP against the model alone, p50/p99
# latency, and latency at half load (python -m bench.serve; what it measures: its docstring, docs/serving.md).
#
#   OUT=runs/serve_out bash bench/gpu_serve.sh            # on the GPU host, from the project root
#   OUT=runs/serve_out bash bench/gpu_serve.sh --seconds 10 --faces 16    # other arguments replace the GPU row's
#
# The host needs PyTorch; the web stack comes as wheels from .whl/ where its Python lacks it. Beforehand, here:
#   bash bench/host_wheels.sh        # .whl/: FastAPI, pydantic, uvicorn, ... for CPython 3.12 (about 5 MiB; carry it)
# and leave the bundled weights other than model_core/weights/default out of the copy if it must be small (or all
# of them, serving a float16 copy carried beside the checkout instead: add --checkpoint .carry/default to the
# GPU row's arguments below, made as in training/gpu_kfold_distill.sh's header).
# Without YuNet (no wheel beyond CPython 3.11) the service serves face crops alone, which is all this sends.
#
# $OUT receives serve.md (the table, as bench.serve prints it) and gpu.txt (the card, its memory, the driver).
#
# CPU dry run, in an environment without the web stack (so the wheels are what it runs on):
#   PYTHON_VERSION=3.11 WHEELS=/tmp/w311 bash bench/host_wheels.sh
#   OUT=/tmp/serve_dry PYTHON=/path/to/bare/python3 WHEELS=/tmp/w311 bash bench/gpu_serve.sh --device cpu --seconds 3 \
#       --warmup-seconds 1
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?name the folder to bring back, e.g. OUT=runs/serve_out}
py=${PYTHON:-python3}
mkdir -p "$out"
# shellcheck source=bench/with_wheels.sh
. bench/with_wheels.sh
with_wheels fastapi fastapi_offline multipart pydantic_settings uvicorn || exit $?
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU seen by nvidia-smi"; } \
    > "$out/gpu.txt" 2>&1
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--device cuda --max-batch-size 256 --max-wait-ms 2 --clients 256 64 --client-processes 4 --seconds 30)
start=$(date +%s)
"$py" -m bench.serve "${args[@]}" 2>&1 | tee "$out/serve.md"
rc=${PIPESTATUS[0]}
echo "wall time: $(( $(date +%s) - start )) s, exit $rc" | tee -a "$out/serve.md"
exit "$rc"
