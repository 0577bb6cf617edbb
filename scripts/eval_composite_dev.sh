#!/usr/bin/env bash
# The go/no-go measurements of benchmarks/composite_default/RULE.md for one candidate model directory:
# three dev sets, k=0/3 with BM25, MiniLM and every dense row fused with BM25 (seed 0), then k=3 at seeds 1 and 2.
# Usage: [SETS="cisi scifact_dev nfcorpus_dev"] bash scripts/eval_composite_dev.sh MODEL_DIR NAME [OUT_DIR]
#   (resumable: finished JSONs are skipped)
# The dev folders are made here with o1_retriever_training.holdout (seed 1234, as scripts/train_default.sh): the 100
# SciFact train queries that script holds out, and a sample of 100 of NFCorpus's 324 dev queries (CPU budget).
set -euo pipefail
source "$(dirname "$0")/common.sh"
MODEL=$1; NAME=$2; OUT=${3:-benchmarks/composite_default/dev}
BIN=.venv/bin/o1-retriever
PY=.venv/bin/python
MINILM=$(.venv/bin/python -c "from o1_retriever.default_model import minilm_path; print(minilm_path())")
mkdir -p "$OUT" runs/c
dev_sample() {  # dataset split out: 100 queries of a split as a BEIR folder (split "dev")
  [ -f "$3/qrels/dev.tsv" ] && return 0
  awk -F'\t' 'NR > 1 {print "{\"query_id\": \"" $1 "\"}"}' "$DATA/$1/qrels/$2.tsv" | sort -u > "$3.ids.jsonl"
  $PY -m o1_retriever_training.holdout --records "$3.ids.jsonl" --dataset "$DATA/$1" --split "$2" \
    --num-queries 100 --seed 1234 --train-out "$3.rest.jsonl" --dev-dir "$3"
}
dev_sample scifact train runs/c/scifact_dev
dev_sample nfcorpus dev runs/c/nfcorpus_dev100
run() {  # set dir split seed k extra...
  local set=$1 dir=$2 split=$3 seed=$4 k=$5; shift 5
  local out="$OUT/${NAME}_${set}_s${seed}.json"
  [ -f "$out" ] && return 0
  $BIN eval --dataset "$dir" --split "$split" --model "$MODEL" --k "$k" --seed "$seed" --thought-cache \
    --output "$out" "$@"
}
for set in ${SETS:-cisi scifact_dev nfcorpus_dev}; do
  case $set in
    cisi) dir=$DATA/cisi; split=test ;;
    scifact_dev) dir=runs/c/scifact_dev; split=dev ;;
    nfcorpus_dev) dir=runs/c/nfcorpus_dev100; split=dev ;;
  esac
  run $set "$dir" $split 0 0,3 --baseline bm25 --baseline-encoder "$MINILM" --hybrid
  run $set "$dir" $split 1 3
  run $set "$dir" $split 2 3
done
