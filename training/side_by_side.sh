# Sourced by gpu_teachers.sh and gpu_distill.sh: train several networks at once on one GPU, one process each
# (`python -m training.gpu_teachers train`: small networks leave a GPU idle between their kernel launches, so
# several fill it better than one after another, and one's failure leaves the others), then `collect` what comes
# back. Reads $out, $runs, $pack, $py, $budget and the array subset, and from the environment MAX_FILES and MAX_MIB
# (what `collect` may leave in $out: 8 files and 64 MiB, a lease's whole answer, unless a caller shares it).
# Arguments: NAME=ARGUMENTS for each network, then -- and the arguments every one of them gets.

# The GPU (name, memory, driver) and the PyTorch and CUDA versions, into the file named and on the console.
gpu_report() {
    { command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
      "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } > "$1" 2>&1
    cat "$1"
}

side_by_side() {
    local jobs=() job name failed=0 rc start i
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do jobs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    mkdir -p "$runs" "$out"
    start=$(date +%s)
    gpu_report "$runs/gpu.txt"
    local pids=() names=()
    for job in "${jobs[@]}"; do
        name=${job%%=*}
        rm -rf "${runs:?}/$name" && mkdir -p "$runs/$name"
        # shellcheck disable=SC2086  # a job's arguments are meant to split
        "$py" -m training.gpu_teachers train --pack "$pack" --out "$runs/$name" --name "$name" ${job#*=} \
            --budget-s "$budget" "${subset[@]}" "$@" > "$runs/$name/console.log" 2>&1 &
        pids+=($!) names+=("$name")
    done
    for i in "${!pids[@]}"; do
        if wait "${pids[$i]}"; then
            echo "${names[$i]}: done"; tail -n 2 "$runs/${names[$i]}/console.log"
        else
            echo "${names[$i]}: FAILED"; tail -n 25 "$runs/${names[$i]}/console.log"; failed=1
        fi
    done
    echo "training: $(( $(date +%s) - start )) s"
    "$py" -m training.gpu_teachers collect --pack "$pack" --runs "$runs" --teachers "${names[@]}" --out "$out" \
        --extra "$runs/gpu.txt" --max-files "${MAX_FILES:-8}" --max-mib "${MAX_MIB:-64}" "${subset[@]}"
    rc=$?
    echo "wall time: $(( $(date +%s) - start )) s"
    [ $rc -eq 0 ] && [ $failed -eq 0 ]
}
