#!/usr/bin/env bash
# Test-split report for a composite candidate (after the dev rule; never used for a choice): SciFact and NFCorpus
# test, k=0/3, BM25, MiniLM, and every dense row fused with BM25.
# Usage: bash scripts/eval_composite_test.sh MODEL_DIR NAME [SETS] [OUT_DIR] [K]   (finished JSONs are skipped)
set -euo pipefail
source "$(dirname "$0")/common.sh"
MODEL=$1; NAME=$2; SETS=${3:-scifact nfcorpus}; OUT=${4:-benchmarks/composite_default/test}; K=${5:-0,3}
MINILM=$(.venv/bin/python -c "from o1_retriever.default_model import minilm_path; print(minilm_path())")
mkdir -p "$OUT"
for set in $SETS; do
  out="$OUT/${NAME}_${set}_k${K//,/}.json"
  [ -f "$out" ] && continue
  .venv/bin/o1-retriever eval --dataset "$DATA/$set" --split test --model "$MODEL" --k "$K" --seed 0 --thought-cache \
    --baseline bm25 --baseline-encoder "$MINILM" --hybrid --output "$out"
done
