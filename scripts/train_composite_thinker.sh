#!/usr/bin/env bash
# Candidate `cand_s` of benchmarks/composite_default/RULE.md (sixth amendment): the shipped composite's encoder and
# settings; its thinker the shipped adapter trained one more epoch, generation loss alone, on its own best thoughts
# for SciFact train (minus the 100 held-out queries) as judged by the composite's encoder
# (o1_retriever_training.self_select). Then the rule's dev runs for it (scripts/eval_composite_dev.sh).
# Usage: bash scripts/train_composite_thinker.sh [OUT_DIR]   (default runs/c/cand_s, which becomes the composite model
#   directory: records.jsonl, thinker/, o1_composite.json; resumable: finished steps are skipped)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${1:-runs/c/cand_s}
require_dev_split
mkdir -p "$OUT"
[ -f "$OUT/records.jsonl" ] || .venv/bin/python -m o1_retriever_training.self_select --model o1_retriever/default_composite \
  --data "$DATA/scifact:train" --exclude-dir runs/c/scifact_dev --output "$OUT/records.jsonl" --seeds 0 1 --k 2
[ -f "$OUT/thinker/adapter_config.json" ] ||  # the export moves it in last: a kill mid-export is not done
  .venv/bin/o1-retriever train --train-data "$OUT/records.jsonl" \
  --output-dir "$OUT/thinker" --resume --init-adapter o1_retriever/default_adapter --group-size 2 --batch-size 16 \
  --num-epochs 1 --learning-rate 1e-4 --lambda-emb 0 --empty-thought-ratio 0 --query-thought-max-length 128 \
  --passage-max-length 32 --no-gradient-checkpointing --token-rows-only --save-steps 10 --seed 7 ${MAX_STEPS:+--max-steps $MAX_STEPS}
# The candidate: the new thinker beside the shipped composite's encoder and settings.
.venv/bin/python scripts/write_candidate.py "$OUT"
bash scripts/eval_composite_dev.sh "$OUT" cand_s
