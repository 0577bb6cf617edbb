#!/usr/bin/env bash
# Reproduce the bundled default model from scratch, on this project's own pipeline:
#   1. synthesize thoughts (SmolLM2 expert + BM25/MiniLM committee, soft vote) for SciFact train and NFCorpus dev,
#      with BM25 hard negatives;
#   2. hold 100 SciFact train queries out as a dev set (they are never trained on);
#   3. train a LoRA adapter on SmolLM2-135M-Instruct with the joint loss, 2 epochs;
#   4. export into o1_retriever/default_adapter/;
#   5. choose the inference settings (sampling temperature x aggregation) on the held-out SciFact dev queries,
#      write them into the model's o1_generation.json;
#   6. evaluate on the test splits (never used for any choice).
# Usage: bash scripts/train_default.sh [RUN_DIR]   (resumable: re-running skips finished steps)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/default}
BIN=.venv/bin/o1-retriever
PY=.venv/bin/python
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
$PY -m o1_retriever_training.holdout --records "$RUN/train.jsonl" --dataset "$DATA/scifact" --split train \
  --num-queries 100 --seed 1234 --train-out "$RUN/train_fit.jsonl" --dev-dir "$RUN/scifact_dev"

$BIN train --train-data "$RUN/train_fit.jsonl" --output-dir "$RUN/model" --resume \
  --lora-r 16 --lora-alpha 32 --group-size 2 --batch-size 16 --num-epochs 2 \
  --learning-rate 2e-4 --temperature 0.05 --lambda-emb 0.8 --empty-thought-ratio 0.25 \
  --query-thought-max-length 128 --passage-max-length 144 --no-gradient-checkpointing \
  --token-rows-only --save-steps 10 --seed 42

# Ship it: adapter + O1 token rows + tokenizer + loss log/plot, no checkpoints; the model card (README.md) stays.
find o1_retriever/default_adapter -mindepth 1 ! -name README.md -delete 2>/dev/null || mkdir -p o1_retriever/default_adapter
(cd "$RUN/model" && cp -r adapter_config.json adapter_model.safetensors embedding tokenizer* chat_template.jinja \
   losses.png train_log.jsonl training_args.json "$OLDPWD/o1_retriever/default_adapter/")
echo '{"max_new_tokens": 48}' > o1_retriever/default_adapter/o1_generation.json  # the thought length it was trained on

# Inference settings, chosen on held-out data only: the 100 SciFact dev queries (NFCorpus ships no train split,
# and its dev split is training data here). T in {0.1 (official), 0.7} x aggregation in {mean (official),
# mean_with_query}, by nDCG@10 at k=3; the winner joins o1_generation.json. These runs also fill the SciFact
# corpus-vector cache that the test run reuses.
mkdir -p "$RUN/dev"
for T in 0.1 0.7; do
  for AGG in mean mean_with_query; do
    [ -f "$RUN/dev/scifact_${T}_${AGG}.json" ] || $BIN eval --dataset "$RUN/scifact_dev" --split dev \
      --k 0,3 --temperature "$T" --aggregation "$AGG" --output "$RUN/dev/scifact_${T}_${AGG}.json"
  done
done
mkdir -p benchmarks/default_dev
$PY -m o1_retriever.evaluation.choose --k 3 --into o1_retriever/default_adapter/o1_generation.json \
  --plot benchmarks/default_dev/choice.png "$RUN"/dev/*.json
cp "$RUN"/dev/*.json benchmarks/default_dev/  # the runs behind the choice

# Evaluate on the test splits (never used above): the default at k=0,1,3,5 (with its own o1_generation.json
# settings) next to BM25 and MiniLM, then the composite (untrained SmolLM2 thinks, MiniLM embeds) at k=3.
MINILM=$(.venv/bin/python -c 'from o1_retriever.default_model import minilm_path; print(minilm_path())')
for ds in scifact nfcorpus; do
  $BIN eval --dataset "$DATA/$ds" --split test --k 0,1,3,5 --baseline bm25 --baseline-encoder "$MINILM" \
    --output "benchmarks/default_$ds.json"
done
for ds in scifact nfcorpus; do
  $BIN eval --dataset "$DATA/$ds" --split test --no-model --composite --k 3 --max-new-tokens 48 \
    --output "benchmarks/composite_$ds.json"
done
.venv/bin/python -m o1_retriever.evaluation.table benchmarks/default_scifact.json benchmarks/composite_scifact.json \
  benchmarks/default_nfcorpus.json benchmarks/composite_nfcorpus.json
