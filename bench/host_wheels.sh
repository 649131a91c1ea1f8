#!/usr/bin/env bash
# Wheels of the web stack for a GPU host whose Python has PyTorch but not the service's other packages, written to
# .whl/ (ignored by git, about 9 MiB) for bench/gpu_serve.sh and training/gpu_sharing.sh to install there without
# a network.
#
#   bash bench/host_wheels.sh                       # here, in the project's environment (make .venv/.installed)
#   PYTHON_VERSION=3.11 WHEELS=/tmp/w311 bash bench/host_wheels.sh   # for CPython 3.11, elsewhere (CPU dry runs)
#
# Each package is fetched at the version installed here, the versions the test suite passed with, together with
# everything it requires in turn (read from the installed packages' metadata), so that an older copy of a shared
# package on the host cannot break it. YuNet (yuface) has wheels for CPython 3.11 only: on 3.12 the service serves
# face crops alone (detect=false), which is all bench.serve sends.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
version=${PYTHON_VERSION:-3.12}
wheels=${WHEELS:-.whl}
# The web stack the service adds to PyTorch, NumPy and Pillow (pyproject.toml); what each needs is added below.
# pi-heif (HEIC) stays out, and the host's own Pillow serves: the benchmarks send PNG face crops, the trainer reads
# FER2013's JPEGs, and without them the service offers neither HEIC nor (with a Pillow before 11.3) AVIF.
top=(fastapi fastapi-offline pydantic-settings uvicorn httptools uvloop python-multipart)
pins=$("$py" - "$version" "${top[@]}" <<'PYTHON'
import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement

target, wanted, seen = sys.argv[1], list(sys.argv[2:]), {}
environment = {"python_version": target, "python_full_version": f"{target}.0", "extra": ""}
while wanted:
    name = wanted.pop()
    key = name.lower().replace("_", "-")
    if key in seen:
        continue
    try:
        seen[key] = version(name)
    except PackageNotFoundError:
        sys.exit(f"{name} is not installed here (run make .venv/.installed first)")
    for line in requires(name) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            wanted.append(requirement.name)
print(" ".join(f"{key}=={pin}" for key, pin in sorted(seen.items())))
PYTHON
)
rm -rf "$wheels" && mkdir -p "$wheels"
# shellcheck disable=SC2086  # one pin per word
"$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" --python-version "$version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 $pins
echo "wrote $(ls "$wheels" | wc -l) wheels for CPython $version to $wheels ($(du -sh "$wheels" | cut -f1)):"
ls "$wheels"
