#!/usr/bin/env bash
# Candidate cand_m (RULE.md, eighth amendment): the shipped thinker and settings, all-mpnet-base-v2 as the encoder.
# mpnet embeds documents about 10x slower than MiniLM here, so the sets go in this order; rerun until all nine exist.
SETS=${SETS:-cisi nfcorpus_dev scifact_dev} exec bash "$(dirname "$0")/eval_composite_encoder.sh" cand_m \
  sentence-transformers/all-mpnet-base-v2
