#!/usr/bin/env bash
# Reproduce the bundled default model from scratch, on this project's own pipeline:
#   synthesize thoughts (SmolLM2 expert + BM25/MiniLM committee, soft vote) for SciFact train and NFCorpus dev,
#   mine hard negatives, train a LoRA adapter on SmolLM2-135M-Instruct with the joint loss, export it into
#   o1_retriever/default_adapter/, and evaluate on the test splits (never used for any choice above).
# Usage: bash scripts/train_default.sh [RUN_DIR]   (resumable: re-running skips finished steps)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/default}
BIN=.venv/bin/o1-retriever
DATA=${DATA:-../shared/data}
mkdir -p "$RUN"
export HF_HUB_OFFLINE=1

synth() {  # dataset split
  $BIN synthesize --data "$DATA/$1" --split "$2" --output "$RUN/synth_$1_$2.jsonl" \
    --num-candidates 3 --num-shots 0 --max-new-tokens 48 --batch-size 16 \
    --committee bm25 minilm --vote soft --negatives bm25 --num-negatives 7 --seed 0
}
synth scifact train
synth nfcorpus dev
cat "$RUN/synth_scifact_train.jsonl" "$RUN/synth_nfcorpus_dev.jsonl" > "$RUN/train.jsonl"

$BIN train --train-data "$RUN/train.jsonl" --output-dir "$RUN/model" --resume \
  --lora-r 16 --lora-alpha 32 --group-size 2 --batch-size 16 --num-epochs 1 \
  --learning-rate 2e-4 --temperature 0.05 --lambda-emb 0.8 --empty-thought-ratio 0.1 \
  --query-thought-max-length 128 --passage-max-length 144 --no-gradient-checkpointing \
  --token-rows-only --save-steps 10 --seed 42

# Ship it: adapter + O1 token rows + tokenizer + loss log/plot, no checkpoints; the model card (README.md) stays.
find o1_retriever/default_adapter -mindepth 1 ! -name README.md -delete 2>/dev/null || mkdir -p o1_retriever/default_adapter
(cd "$RUN/model" && cp -r adapter_config.json adapter_model.safetensors embedding tokenizer* chat_template.jinja \
   losses.png train_log.jsonl training_args.json "$OLDPWD/o1_retriever/default_adapter/")
echo '{"max_new_tokens": 48}' > o1_retriever/default_adapter/o1_generation.json  # the thought length it was trained on

# Evaluate on the test splits (never used above): the default at k=0,1,3,5 next to BM25 and MiniLM, then the
# composite (untrained SmolLM2 thinks, MiniLM embeds) at k=3. Thoughts were trained at <= 48 tokens.
MINILM=$(.venv/bin/python -c 'from o1_retriever.default_model import minilm_path; print(minilm_path())')
for ds in scifact nfcorpus; do
  $BIN eval --dataset "$DATA/$ds" --split test --k 0,1,3,5 --baseline bm25 --baseline-encoder "$MINILM" \
    --max-new-tokens 48 --output "benchmarks/default_$ds.json"
done
for ds in scifact nfcorpus; do
  $BIN eval --dataset "$DATA/$ds" --split test --no-model --composite --k 3 --max-new-tokens 48 \
    --output "benchmarks/composite_$ds.json"
done
.venv/bin/python -m o1_retriever.evaluation.table benchmarks/default_scifact.json benchmarks/composite_scifact.json \
  benchmarks/default_nfcorpus.json benchmarks/composite_nfcorpus.json
