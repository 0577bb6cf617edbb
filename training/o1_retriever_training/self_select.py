"""Best-of-N thoughts of a composite model's own thinker, judged by its own encoder: training records for the thinker.

The thinker samples N thoughts per training query (k per seed, several seeds: the thought cache keeps them); each is
scored the way the composite model will use it (its own aggregation of the bare query's vector and
`embed(query + " " + thought)`) by its margin: cosine to the positive passage minus the highest cosine to a
BM25 hard negative. The best thought of a query is kept when its margin beats the bare query's by `min_gain`, and
written as a record {query, pos, neg, thought} for `o1-retriever train --lambda-emb 0` (the generation loss alone):
the thinker learns to write the thoughts that help this encoder.

    python -m o1_retriever_training.self_select --model o1_retriever/default_composite \
        --data ../shared/data/scifact:train --exclude-dir runs/c/scifact_dev --output runs/s/records.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from o1_retriever.display import bars_shown

from .arguments import add_dataclass_arguments, check_output_path, from_namespace, is_finite_number
from .bars import transformers_bars


@dataclass
class SelfSelectArguments:
    model: str = field(default=None, metadata={"help": "composite model directory (o1_composite.json): its thinker "
                                                       "and encoder"})
    data: str = field(default=None, metadata={"help": "BEIR folder and split, FOLDER:SPLIT (default split: train)"})
    output: str = field(default=None, metadata={"help": "records JSONL to write"})
    exclude_dir: str = field(default=None, metadata={"help": "a BEIR folder (e.g. a held-out dev split) whose "
                                                              "queries are left out"})
    seeds: list = field(default_factory=lambda: [0, 1], metadata={"help": "sampling seeds; k thoughts each"})
    k: int = field(default=3, metadata={"help": "thoughts per query per seed"})
    num_negatives: int = field(default=7, metadata={"help": "BM25 hard negatives per query (the margin's rivals)"})
    min_gain: float = field(default=0.0, metadata={"help": "keep a query only if its best thought's margin beats "
                                                           "the bare query's by more than this"})
    batch_size: int = field(default=32, metadata={"help": "queries per thinking batch"})


@dataclass
class SelfSelection:
    output: str
    queries: int          # training queries read
    kept: int             # records written (best thought beats the bare query)
    mean_gain: float      # mean margin gain of the kept thoughts over the bare query


def _check_numbers(args: SelfSelectArguments) -> None:
    for seed in args.seeds:
        try:
            int(seed)  # the command line gives them as text
        except (TypeError, ValueError):
            raise ValueError(f"seeds={args.seeds!r}: {seed!r} is not an int") from None
    if isinstance(args.num_negatives, bool) or not isinstance(args.num_negatives, int) or args.num_negatives < 0:
        raise ValueError(f"num_negatives={args.num_negatives!r} must be an int >= 0")
    if isinstance(args.batch_size, bool) or not isinstance(args.batch_size, int) or args.batch_size < 1:
        raise ValueError(f"batch_size={args.batch_size!r} must be a positive int")
    if not is_finite_number(args.min_gain):
        raise ValueError(f"min_gain={args.min_gain!r} must be a finite number")


def self_select(args: SelfSelectArguments) -> SelfSelection:
    from o1_retriever import O1Embedder
    from o1_retriever.aggregation import aggregate
    from o1_retriever.atomic import write_text_atomically
    from o1_retriever.evaluation.data import read_beir_jsonl

    from .data import labeled_pairs, load_beir
    from .members import BM25Member
    from .negatives import mine_negatives
    for name in ("model", "data", "output"):
        if not getattr(args, name):
            raise ValueError(f"{name} is required (got {getattr(args, name)!r})")
    if args.k < 1 or not args.seeds:
        raise ValueError(f"k={args.k} must be >= 1 and seeds={args.seeds} must not be empty")
    _check_numbers(args)
    # before any query is thought about; "~" expanded, as the shell leaves --output=~/r.jsonl
    output = check_output_path(args.output, "--output", folder=False)
    folder, _, split = args.data.partition(":")
    data = load_beir(folder, split or "train")
    excluded = {q["_id"] for q in read_beir_jsonl(Path(args.exclude_dir) / "queries.jsonl", "query", ("_id",))} \
        if args.exclude_dir else set()
    pairs = [p for p in labeled_pairs(data) if p.query_id not in excluded]
    texts = [p.query for p in pairs]

    show = bars_shown()
    with transformers_bars(show):  # the thinker's merge into the cache, on its first load
        embedders = [O1Embedder.from_pretrained(args.model, thought_cache=True, seed=int(s)) for s in args.seeds]
    per_seed = [e.think(texts, k=args.k, batch_size=args.batch_size, show_progress_bar=show) for e in embedders]
    thoughts = [sum(group, []) for group in zip(*per_seed)]  # every seed's samples, per query
    encoder = embedders[0].encoder  # the composite's encoder (one sentence-transformers model or an ensemble)

    def embed(strings: list[str]) -> np.ndarray:
        return encoder.encode(strings, batch_size=64)

    doc_ids = list(data.corpus)
    negatives = mine_negatives(texts, [set(p.positive_ids) for p in pairs], doc_ids, list(data.corpus.values()),
                               [BM25Member(list(data.corpus.values()))], args.num_negatives)
    needed = sorted({d for p, negs in zip(pairs, negatives) for d in (*p.positive_ids, *negs)})
    passage = dict(zip(needed, embed([data.corpus[d] for d in needed])))  # each passage embedded once
    bare = embed(texts)
    n = len(thoughts[0]) if thoughts else 0
    with_thought = embed([f"{q} {t}" for q, ts in zip(texts, thoughts) for t in ts]).reshape(len(texts), n, -1)
    lines, gains = [], []
    for i, (pair, negs) in enumerate(zip(pairs, negatives)):
        pos = np.stack([passage[d] for d in pair.positive_ids])
        neg = np.stack([passage[d] for d in negs]) if negs else None

        def margin(v: np.ndarray) -> np.ndarray:  # best positive minus hardest negative, per row
            return (v @ pos.T).max(-1) - ((v @ neg.T).max(-1) if neg is not None else 0.0)
        # Each candidate as the composite uses a thought: its own aggregation of the query and that thought.
        candidates = aggregate(with_thought[i][:, None], embedders[0].settings.aggregation,
                               np.broadcast_to(bare[i], with_thought[i].shape), embedders[0].settings.query_weight)
        scores, base = margin(candidates), float(margin(bare[i][None])[0])
        best = int(np.argmax(scores))
        if scores[best] - base > args.min_gain:
            gains.append(float(scores[best] - base))
            lines.append(json.dumps({"query_id": pair.query_id, "query": pair.query,
                                     "pos": [data.corpus[d] for d in pair.positive_ids],
                                     "neg": [data.corpus[d] for d in negs], "thought": thoughts[i][best],
                                     "margin_gain": gains[-1]}) + "\n")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(output, "".join(lines))  # a killed run leaves no half file for a resume to trust
    return SelfSelection(str(output), len(texts), len(lines), float(np.mean(gains)) if gains else 0.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataclass_arguments(parser, SelfSelectArguments)
    result = self_select(from_namespace(SelfSelectArguments, parser.parse_args(argv)))
    print(f"kept {result.kept} of {result.queries} queries (mean margin gain {result.mean_gain:.4f}) -> "
          f"{result.output}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (ValueError, OSError) as error:  # main() raises for callers; the command line gets one line, not a traceback
        print(f"python -m o1_retriever_training.self_select: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
