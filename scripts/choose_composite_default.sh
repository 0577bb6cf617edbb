#!/usr/bin/env bash
# Choose and ship the composite default (benchmarks/composite_default/RULE.md): each candidate in
# benchmarks/composite_default/candidates/*.json (a thinker, an encoder, settings; the trained ones and those with
# another encoder through their own scripts) is evaluated on the three dev sets, scripts/composite_rule.py applies
# the rule, the choice is written to o1_retriever/default_composite/o1_composite.json, and every candidate is then
# evaluated on the test splits for the report. Resumable (finished JSONs are skipped); runs after
# scripts/train_default.sh has shipped the thinker.
# Usage: bash scripts/choose_composite_default.sh [RUN_DIR]      (UNTIL=ship stops before the test splits)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/c}
ADAPTER=$(realpath o1_retriever/default_adapter)
BENCH=benchmarks/composite_default
# Trained candidates make their own model directories and run their own dev evaluations.
bash scripts/train_composite_encoder.sh "$RUN/cand_e"
bash scripts/train_composite_thinker.sh "$RUN/cand_s"
bash scripts/train_composite_gemma.sh
bash scripts/eval_composite_mpnet.sh
bash scripts/eval_composite_ensemble.sh
for spec in "$BENCH"/candidates/*.json; do
  name=$(basename "$spec" .json)
  case $name in cand_e|cand_s|cand_g|cand_m|cand_x) continue ;; esac
  mkdir -p "$RUN/$name"
  sed "s#\"../default_adapter\"#\"$ADAPTER\"#" "$spec" > "$RUN/$name/o1_composite.json"
  bash scripts/eval_composite_dev.sh "$RUN/$name" "$name"
done
.venv/bin/python scripts/composite_rule.py "$BENCH/dev" --output "$BENCH/decision.json"
choice=$(.venv/bin/python -c "import json; print(json.load(open('$BENCH/decision.json'))['choice'])")
mkdir -p o1_retriever/default_composite
cp "$BENCH/candidates/$choice.json" o1_retriever/default_composite/o1_composite.json
echo "shipped $choice as o1_retriever/default_composite/o1_composite.json"
[ "${UNTIL:-}" = ship ] && exit 0
for spec in "$BENCH"/candidates/*.json; do
  name=$(basename "$spec" .json)
  bash scripts/eval_composite_test.sh "$RUN/$name" "$name"
done
