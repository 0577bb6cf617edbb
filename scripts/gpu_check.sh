#!/usr/bin/env bash
# The GPU half of the checks, which CI (no GPU) cannot run: the CUDA tests, `o1-retriever bench` on the GPU,
# and the bundled default on SciFact and NFCorpus test, thought on and embedded by the GPU.
#
#   scripts/gpu_check.sh [OUT_DIR] [BEIR_DATA_DIR]      (defaults: benchmarks/gpu, ../shared/data)
#
# Needs the project installed (`make install`, or PYTHONPATH=. with its requirements). Each step appends to
# OUT_DIR/gpu_check.log and writes its own JSON; a failed step does not stop the next.
# DEVICE, BENCH_ARGS and EVAL_ARGS override the device and add arguments (a quick CPU dry run, say).
set -u
out=${1:-benchmarks/gpu}
data=${2:-../shared/data}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
mkdir -p "$out"
log="$out/gpu_check.log"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

step() {
    local name=$1 start=$SECONDS
    shift
    echo "== $name: $*" | tee -a "$log"
    "$@" >> "$log" 2>&1
    echo "== $name: exit $? after $((SECONDS - start)) s" | tee -a "$log"
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    $py -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__)"
} | tee -a "$log"
step tests $py -m pytest -q -p no:cacheprovider -rA tests/o1_retriever/test_cuda.py
# shellcheck disable=SC2086  # the *_ARGS are word lists on purpose
step bench $py -m o1_retriever.cli bench --device "$device" --queries 256 --docs 2048 --one-by-one 16 \
    --output "$out/bench_$device.json" ${BENCH_ARGS:-}
for dataset in scifact nfcorpus; do
    if [ -d "$data/$dataset" ]; then
        # shellcheck disable=SC2086
        step "eval_$dataset" $py -m o1_retriever.cli eval --dataset "$data/$dataset" --split test --k 0,1,3,5 \
            --device "$device" --output "$out/${dataset}_$device.json" ${EVAL_ARGS:-}
    fi
done
