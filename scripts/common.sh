# Sourced by the composite scripts: run from the repository root, offline, on the shared data.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=${DATA:-../shared/data}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
require_dev_split() {  # the 100 held-out SciFact train queries, made by scripts/eval_composite_dev.sh
  [ -d runs/c/scifact_dev ] || { echo "runs/c/scifact_dev is missing: run scripts/eval_composite_dev.sh once" >&2; exit 1; }
}
