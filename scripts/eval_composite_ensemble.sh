#!/usr/bin/env bash
# Candidate cand_x (RULE.md, ninth amendment): the shipped thinker and settings, the ensemble of all-MiniLM-L6-v2 and
# all-mpnet-base-v2 as the encoder. Its corpus vectors are its members' own, from each encoder's eval cache: nothing
# already embedded by scripts/eval_composite_mpnet.sh (or a MiniLM baseline) is embedded again.
SETS=${SETS:-nfcorpus_dev scifact_dev cisi} exec bash "$(dirname "$0")/eval_composite_encoder.sh" cand_x \
  sentence-transformers/all-MiniLM-L6-v2 sentence-transformers/all-mpnet-base-v2
