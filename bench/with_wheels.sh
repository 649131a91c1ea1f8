# Sourced by the scripts that run on a GPU host (bench/gpu_serve.sh, training/gpu_sharing.sh): where .whl/ holds
# wheels (made by bench/host_wheels.sh), install them for this run alone and put them first on PYTHONPATH, so that
# a host whose Python has PyTorch but not FastAPI or pydantic runs the service and the trainer without a network.
# Then check that the modules named as arguments import. Reads $py (the host's python) and WHEELS (default .whl).
with_wheels() {
    local wheels=${WHEELS:-.whl} site
    if compgen -G "$wheels/*.whl" > /dev/null; then
        site=$(mktemp -d /tmp/fersnet-site.XXXXXX)
        "$py" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl || return 1
        export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    "$py" -c "import $(IFS=,; echo "$*")" \
        || { echo "missing packages: run bash bench/host_wheels.sh where pip works, and carry .whl" >&2; return 2; }
}
