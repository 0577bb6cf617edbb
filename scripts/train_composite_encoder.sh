#!/usr/bin/env bash
# Candidate `cand_e` of benchmarks/composite_default/RULE.md (fourth amendment): the then shipped composite's thinker and
# settings, its encoder (all-MiniLM-L6-v2) fine-tuned on SciFact train minus the 100 held-out dev queries, with the
# thinker's own thoughts. Then the rule's dev runs for it (scripts/eval_composite_dev.sh).
# Usage: bash scripts/train_composite_encoder.sh [OUT_DIR]   (default runs/c/cand_e; a finished model is kept)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${1:-runs/c/cand_e}
require_dev_split
if [ ! -f "$OUT/o1_composite.json" ]; then
  .venv/bin/o1-retriever train-encoder --model o1_retriever/minilm_composite --data "$DATA/scifact:train" \
    --exclude-dir runs/c/scifact_dev --output-dir "$OUT" --thoughts-per-query 2 --bare-query-ratio 0.5 \
    --num-negatives 1 --lora-r 16 --learning-rate 1e-4 --num-epochs 1 --max-steps "${MAX_STEPS:-30}" \
    --batch-size 32 --merge-weight 0.5 --seed 42
fi
bash scripts/eval_composite_dev.sh "$OUT" cand_e
