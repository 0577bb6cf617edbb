#!/usr/bin/env bash
# Reproduce the bundled default model from scratch, on this project's own pipeline:
#   1. synthesize thoughts (SmolLM2 expert + BM25/MiniLM committee, soft vote) for SciFact train and NFCorpus dev,
#      with BM25 hard negatives;
#   2. hold 100 SciFact train queries out as a dev set (they are never trained on);
#   3. train a LoRA adapter on SmolLM2-135M-Instruct with the joint loss, 2 epochs; then continue it for 1 epoch on
#      the same records plus 1000 SciFact title-to-abstract pairs (python -m o1_retriever_training.titles), and
#      once more for 1 epoch on the records plus 1500 fresh title pairs (none of the first 1000) = stage 3; then
#      stage 6, the shipped default (benchmarks/stage6_trial/ has the trial that chose it): 1 epoch on the records
#      plus 500 fresh SciFact and 500 NFCorpus title pairs, each given a committee-chosen thought (synthesize --pairs);
#   4. export into o1_retriever/default_adapter/ (what inference loads), each stage's training record (arguments,
#      per-step losses, loss plot) into benchmarks/default_adapter_training/stage{1,2,3,6}/;
#   5. choose the inference settings (sampling temperature x aggregation x the bare query's weight) on the
#      held-out SciFact dev queries, write them into the model's o1_generation.json; then the dense share of
#      hybrid search (fused with BM25) on the same queries (printed: o1_retriever.fusion.DEFAULT_DENSE_WEIGHT
#      holds the shipped choice);
#   6. evaluate on the test splits (never used for any choice), each dense row also fused with BM25;
#   7. (shipping into the package only) choose the composite default's settings, this thinker feeding
#      all-MiniLM-L6-v2, by benchmarks/composite_default/RULE.md: scripts/choose_composite_default.sh.
# Usage: bash scripts/train_default.sh [RUN_DIR]   (resumable: re-running skips finished steps)
#   LAST_STAGE=3 stops after stage 3 and ships it (the default before 2026-12-03). STAGE3=DIR starts stage 6 from a
#   stage 3 trained before instead of training stages 1-3 (about 3 h less on a 2-core AMX CPU); STAGE3_LOGS=DIR
#   holds its stage1/, stage2/, stage3/ records (default: benchmarks/default_adapter_training). UNTIL=train stops
#   once the last stage is trained, before anything is shipped; UNTIL=ship once it is shipped, before the settings
#   are chosen and the test splits evaluated.
# A smoke run of every step (minutes, not hours) writes elsewhere and shrinks the work, e.g.
#   ADAPTER_DIR=/tmp/a BENCH_DIR=/tmp/b LIMIT=12 DEV_QUERIES=4 MAX_STEPS=2 TRAIN_BATCH=4 TITLE_DOCS=12 TITLE_DOCS3=12 \
#   TITLE_DOCS5=6 TITLE_DOCS4=6 TITLE_THOUGHTS=3 TEST_SETS=scifact \
#   EVAL_ARGS="--max-docs 200 --max-queries 6" \
#     bash scripts/train_default.sh /tmp/run
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/default}
BIN=.venv/bin/o1-retriever
PY=.venv/bin/python
DATA=${DATA:-../shared/data}
DEFAULT_ADAPTER=o1_retriever/default_adapter
ADAPTER=$(realpath -m "${ADAPTER_DIR:-$DEFAULT_ADAPTER}")  # where the model is shipped
BENCH=${BENCH_DIR:-benchmarks}            # where the results go
LOGS=$(realpath -m "${LOGS_DIR:-$BENCH/default_adapter_training}")  # each stage's training record, beside the results
STAGE3_LOGS=${STAGE3_LOGS:-benchmarks/default_adapter_training}     # with STAGE3: the records of its stages 1-3
DEV_QUERIES=${DEV_QUERIES:-100}
TITLE_DOCS=${TITLE_DOCS:-1000}             # SciFact title-to-abstract pairs added in stage 2
TITLE_DOCS3=${TITLE_DOCS3:-1500}           # fresh ones (not in stage 2's) added in stage 3
TITLE_DOCS5=${TITLE_DOCS5:-1000}           # fresh SciFact titles drawn for stage 6 (as stage 5's trial drew them)
TITLE_DOCS4=${TITLE_DOCS4:-750}            # NFCorpus inline titles drawn for stage 6 (as stage 4's trial drew them)
TITLE_THOUGHTS=${TITLE_THOUGHTS:-500}      # of each, how many get a thought and join stage 6
TEST_SETS=${TEST_SETS:-scifact nfcorpus}  # evaluated on their test splits at the end
TRAIN_BATCH=${TRAIN_BATCH:-16}             # queries per training step (each with a positive and a hard negative)
LAST_STAGE=${LAST_STAGE:-6}                # the stage shipped: 6 (the bundled default) or 3 (its predecessor)
case "$LAST_STAGE" in 3|6) ;; *) echo "LAST_STAGE=$LAST_STAGE: use 3 or 6" >&2; exit 2 ;; esac
case "${UNTIL:-}" in ""|train|ship) ;; *) echo "UNTIL=$UNTIL: use train or ship (or leave it unset)" >&2; exit 2 ;; esac
read -r -a LIMIT_ARGS <<< "${LIMIT:+--limit $LIMIT}"            # synthesize at most LIMIT queries per dataset
read -r -a STEP_ARGS <<< "${MAX_STEPS:+--max-steps $MAX_STEPS}"  # stop training early
read -r -a EVAL_ARGS <<< "${EVAL_ARGS:-}"                       # e.g. --max-docs 200 (every eval)
MODEL_ARGS=(--model o1-retriever-joint)  # the shipped joint model by name (the plain default is the composite)
[ "$ADAPTER" = "$(realpath -m "$DEFAULT_ADAPTER")" ] || MODEL_ARGS=(--model "$ADAPTER")
mkdir -p "$RUN" "$BENCH"
export HF_HUB_OFFLINE=1

synth() {  # dataset split
  $BIN synthesize --data "$DATA/$1" --split "$2" --output "$RUN/synth_$1_$2.jsonl" \
    --num-candidates 3 --num-shots 0 --max-new-tokens 48 --batch-size 16 \
    --committee bm25 minilm --vote soft --negatives bm25 --num-negatives 7 --seed 0 "${LIMIT_ARGS[@]}"
}
synth scifact train
synth nfcorpus dev
cat "$RUN/synth_scifact_train.jsonl" "$RUN/synth_nfcorpus_dev.jsonl" > "$RUN/train.jsonl"
$PY -m o1_retriever_training.holdout --records "$RUN/train.jsonl" --dataset "$DATA/scifact" --split train \
  --num-queries "$DEV_QUERIES" --seed 1234 --train-out "$RUN/train_fit.jsonl" --dev-dir "$RUN/scifact_dev"

# STAGE3=DIR (a stage 3 adapter: o1_retriever/default_adapter at commit 6e90965, say; STAGE3_LOGS=DIR has the
# training records of its stages 1-3) skips training stages 1-3; the records and the title files are still made,
# since stage 6 trains on them and draws fresh titles against them.
# A finished stage is not trained again. An export moves adapter_config.json in last (after the weights), so it marks
# a whole model; stages exported before runs wrote training_finished.json, and a STAGE3 copy, have it too.
trained() { [ -f "$RUN/$1/adapter_config.json" ]; }
if [ -n "${STAGE3:-}" ] && ! trained model3; then  # its adapter_config.json last: a kill mid-copy leaves no model
  mkdir -p "$RUN/model3"
  for f in "$STAGE3"/* "$STAGE3"/.[!.]*; do
    if [ -e "$f" ] && [ "${f##*/}" != adapter_config.json ]; then cp -r "$f" "$RUN/model3/"; fi
  done
  cp "$STAGE3/adapter_config.json" "$RUN/model3/.adapter_config.json.tmp"
  mv "$RUN/model3/.adapter_config.json.tmp" "$RUN/model3/adapter_config.json"
fi

trained model3 || trained model || $BIN train --train-data "$RUN/train_fit.jsonl" --output-dir "$RUN/model" --resume \
  --lora-r 16 --lora-alpha 32 --group-size 2 --batch-size "$TRAIN_BATCH" --num-epochs 2 \
  --learning-rate 2e-4 --temperature 0.05 --lambda-emb 0.8 --empty-thought-ratio 0.25 \
  --query-thought-max-length 128 --passage-max-length 144 --no-gradient-checkpointing \
  --token-rows-only --save-steps 10 --seed 42 "${STEP_ARGS[@]}"

# Stage 2: continue that model for 1 epoch on the same records plus SciFact title-to-abstract pairs (each title
# a query, its text the positive, BM25 negatives; no label and no LLM involved), at half the learning rate.
[ -f "$RUN/titles_scifact.jsonl" ] || $PY -m o1_retriever_training.titles --data "$DATA/scifact" \
  --num-docs "$TITLE_DOCS" --seed 0 --output "$RUN/titles_scifact.jsonl"
continue_training() {  # titles file, mix file, from model, to model, seed: 1 epoch on the records + those titles
  trained "$4" && return 0
  cat "$RUN/train_fit.jsonl" "$RUN/$1" > "$RUN/$2"
  $BIN train --train-data "$RUN/$2" --output-dir "$RUN/$4" --resume --init-adapter "$RUN/$3" \
    --group-size 2 --batch-size "$TRAIN_BATCH" --num-epochs 1 \
    --learning-rate 1e-4 --temperature 0.05 --lambda-emb 0.8 --empty-thought-ratio 0.25 \
    --query-thought-max-length 128 --passage-max-length 144 --no-gradient-checkpointing \
    --token-rows-only --save-steps 10 --seed "$5" "${STEP_ARGS[@]}"
}
trained model3 || continue_training titles_scifact.jsonl train_mix.jsonl model model2 43

# Stage 3: the same again from stage 2's model, on the records plus 1500 fresh title pairs (--exclude: no document
# whose title stage 2 trained on). More titles, not more passes over the same ones: a third epoch on stage 1's
# records alone had moved the held-out queries by 0.001.
[ -f "$RUN/titles3_scifact.jsonl" ] || $PY -m o1_retriever_training.titles --data "$DATA/scifact" \
  --num-docs "$TITLE_DOCS3" --seed 1 --exclude "$RUN/titles_scifact.jsonl" --output "$RUN/titles3_scifact.jsonl"
continue_training titles3_scifact.jsonl train_mix3.jsonl model2 model3 44

# Stage 6 (stages 4 and 5 were trials, not shipped: benchmarks/stage{4,5,6}_trial/): stage 3 for 1 epoch on the
# records plus 500 fresh SciFact title pairs and 500 NFCorpus title pairs (NFCorpus runs its title into the text:
# `--inline-title abstract`), each now with a thought written and chosen as the records' were (`synthesize
# --pairs`), so that title pairs train the thinking path too, on both domains. Stage 5 drew 1,000 SciFact titles
# (seed 3) and stage 4 750 NFCorpus ones (seed 0); stage 6 took the first 500 of each.
if [ "$LAST_STAGE" = 6 ]; then
  [ -f "$RUN/titles5_scifact.jsonl" ] || $PY -m o1_retriever_training.titles --data "$DATA/scifact" \
    --num-docs "$TITLE_DOCS5" --seed 3 --exclude "$RUN/titles_scifact.jsonl" "$RUN/titles3_scifact.jsonl" \
    --output "$RUN/titles5_scifact.jsonl"
  [ -f "$RUN/titles4_nfcorpus.jsonl" ] || $PY -m o1_retriever_training.titles --data "$DATA/nfcorpus" \
    --inline-title abstract --num-docs "$TITLE_DOCS4" --seed 0 --output "$RUN/titles4_nfcorpus.jsonl"
  pair_thoughts() {  # dataset, titles file: the first TITLE_THOUGHTS pairs, each given a committee-chosen thought
    local out="$RUN/${2%.jsonl}_thoughts.jsonl"
    head -n "$TITLE_THOUGHTS" "$RUN/$2" > "$RUN/${2%.jsonl}_head.jsonl"
    $BIN synthesize --pairs "$RUN/${2%.jsonl}_head.jsonl" --data "$DATA/$1" --output "$out" \
      --num-candidates 3 --num-shots 0 --max-new-tokens 48 --batch-size 16 \
      --committee bm25 minilm --vote soft --seed 0
  }
  pair_thoughts scifact titles5_scifact.jsonl
  pair_thoughts nfcorpus titles4_nfcorpus.jsonl
  cat "$RUN/titles5_scifact_thoughts.jsonl" "$RUN/titles4_nfcorpus_thoughts.jsonl" > "$RUN/titles6_thoughts.jsonl"
  continue_training titles6_thoughts.jsonl train_mix6.jsonl model3 model6 47
fi

[ "${UNTIL:-}" = train ] && exit 0  # UNTIL=train: stop once every stage is trained

# Ship it: only what inference loads goes into the adapter dir: LoRA + O1 token rows as PEFT trainable tokens,
# tokenizer, no checkpoints; the model card (README.md) stays. Each stage's training record (arguments, per-step
# losses, loss plot) goes to LOGS/stageN/.
mkdir -p "$ADAPTER"
find "$ADAPTER" -mindepth 1 ! -name README.md -delete
(cd "$RUN/model$LAST_STAGE" && cp -r adapter_config.json adapter_model.safetensors tokenizer* chat_template.jinja \
   "$ADAPTER/")
ship_logs() {  # stage number, the folder with that stage's losses.png, train_log.jsonl and training_args.json
  local to="$LOGS/stage$1"
  [ "$(realpath -m "$2")" = "$(realpath -m "$to")" ] && return 0  # STAGE3_LOGS is LOGS: already in place
  rm -rf "$to" && mkdir -p "$to"
  (cd "$2" && cp losses.png train_log.jsonl training_args.json "$to/")
}
for stage in "1 model" "2 model2" "3 model3"; do
  read -r n model <<< "$stage"
  if [ -f "$RUN/$model/train_log.jsonl" ]; then ship_logs "$n" "$RUN/$model"; else ship_logs "$n" "$STAGE3_LOGS/stage$n"; fi
done
[ "$LAST_STAGE" = 6 ] && ship_logs 6 "$RUN/model6"
echo '{"max_new_tokens": 48}' > "$ADAPTER/o1_generation.json"  # the thought length it was trained on
[ "${UNTIL:-}" = ship ] && exit 0

# Inference settings, chosen on held-out data only: the 100 SciFact dev queries (NFCorpus ships no train split,
# and its dev split is training data here). T in {0.1 (official), 0.7} x aggregation in {mean (official),
# mean_with_query (equal share)}, then the bare query's weight under mean_with_query at T=0.7; by nDCG@10 at
# k=3, the winner joins o1_generation.json. These runs also fill the SciFact corpus-vector cache that the test
# run reuses.
mkdir -p "$RUN/dev"
dev_eval() {  # output name, then eval options
  local out="$RUN/dev/scifact_$1.json"; shift
  [ -f "$out" ] || $BIN eval --dataset "$RUN/scifact_dev" --split dev "${MODEL_ARGS[@]}" "${EVAL_ARGS[@]}" "$@" \
    --output "$out"
}
K=0,3  # k=0 (the bare query, the bar to beat) is the same in every setting: run it once
for T in 0.1 0.7; do
  for AGG in mean mean_with_query; do
    dev_eval "${T}_${AGG}" --k $K --temperature "$T" --aggregation "$AGG"
    K=3
  done
done
for W in 0.5 0.6 0.75 0.9; do
  dev_eval "0.7_mean_with_query_w$W" --k 3 --temperature 0.7 --aggregation mean_with_query --query-weight "$W"
done
mkdir -p "$BENCH/default_dev"
$PY -m o1_retriever.evaluation.choose --k 3 --into "$ADAPTER/o1_generation.json" \
  --plot "$BENCH/default_dev/choice.png" "$RUN"/dev/*.json
cp "$RUN"/dev/*.json "$BENCH/default_dev/"  # the runs behind the choice

# The dense share of hybrid search, with the settings just chosen (their k=3 thoughts are cached after the first
# run, so each further share costs a few seconds of fusion and embedding).
mkdir -p "$RUN/hybrid_dev" "$BENCH/hybrid_dev"
for W in 0.2 0.3 0.4 0.5 0.6 0.7; do
  out="$RUN/hybrid_dev/scifact_w$W.json"
  [ -f "$out" ] || $BIN eval --dataset "$RUN/scifact_dev" --split dev "${MODEL_ARGS[@]}" "${EVAL_ARGS[@]}" \
    --k 0,3 --baseline bm25 --hybrid "$W" --thought-cache --output "$out"
done
$PY -m o1_retriever.evaluation.choose --k 3 --system o1+bm25 --plot "$BENCH/hybrid_dev/choice.png" \
  "$RUN"/hybrid_dev/*.json
cp "$RUN"/hybrid_dev/*.json "$BENCH/hybrid_dev/"

# Evaluate on the test splits (never used above): the default at k=0,1,3,5 (with its own o1_generation.json
# settings) next to BM25 and MiniLM, each dense row also fused with BM25 at the shipped dense share; then the
# composite (untrained SmolLM2 thinks, MiniLM embeds) at k=3.
MINILM=$($PY -c 'from o1_retriever.default_model import minilm_path; print(minilm_path())')
for ds in $TEST_SETS; do
  $BIN eval --dataset "$DATA/$ds" --split test --k 0,1,3,5 --baseline bm25 --baseline-encoder "$MINILM" \
    --hybrid "${MODEL_ARGS[@]}" "${EVAL_ARGS[@]}" --output "$BENCH/default_$ds.json"
done
for ds in $TEST_SETS; do
  $BIN eval --dataset "$DATA/$ds" --split test --no-model --composite --k 3 --max-new-tokens 48 \
    "${EVAL_ARGS[@]}" --output "$BENCH/composite_$ds.json"
done
tables=()
for ds in $TEST_SETS; do tables+=("$BENCH/default_$ds.json" "$BENCH/composite_$ds.json"); done
$PY -m o1_retriever.evaluation.table "${tables[@]}"

# The composite default (the bundled one since 2026-12-05): this thinker + all-MiniLM-L6-v2, its settings chosen by
# the rule in benchmarks/composite_default/RULE.md on three dev sets, then reported on the test splits.
if [ "$ADAPTER" = "$(realpath -m "$DEFAULT_ADAPTER")" ]; then bash scripts/choose_composite_default.sh "$RUN/composite"; fi
