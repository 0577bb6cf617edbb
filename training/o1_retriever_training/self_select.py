"""Best-of-N thoughts of a composite model's own thinker, judged by its own encoder: training records for the thinker.

The thinker samples N thoughts per training query (k per seed, several seeds: the thought cache keeps them); each is
scored the way the composite model will use it, as the query vector `unit(w·q + (1-w)·embed(query + " " + thought))`
(w: the model's bare-query share), by its margin: cosine to the positive passage minus the highest cosine to a
BM25 hard negative. The best thought of a query is kept when its margin beats the bare query's by `min_gain`, and
written as a record {query, pos, neg, thought} for `o1-retriever train --lambda-emb 0` (the generation loss alone):
the thinker learns to write the thoughts that help this encoder.

    python -m o1_retriever_training.self_select --model o1_retriever/default_composite \
        --data ../shared/data/scifact:train --exclude-dir runs/c/scifact_dev --output runs/s/records.jsonl
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .arguments import add_dataclass_arguments, from_namespace


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


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def self_select(args: SelfSelectArguments) -> SelfSelection:
    from o1_retriever import O1Embedder
    from o1_retriever.evaluation.data import document_text, qrels_path, read_beir_jsonl, read_qrels

    from .members import BM25Member
    from .negatives import mine_negatives
    for name in ("model", "data", "output"):
        if not getattr(args, name):
            raise ValueError(f"{name} is required (got {getattr(args, name)!r})")
    if args.k < 1 or not args.seeds:
        raise ValueError(f"k={args.k} must be >= 1 and seeds={args.seeds} must not be empty")
    seeds = [int(s) for s in args.seeds]
    folder, _, split = args.data.partition(":")
    folder = Path(folder)
    qrels = read_qrels(qrels_path(folder, split or "train"))
    queries = {q["_id"]: q["text"] for q in read_beir_jsonl(folder / "queries.jsonl", "query", ("_id", "text"))}
    docs = {d["_id"]: document_text(d) for d in read_beir_jsonl(folder / "corpus.jsonl", "document", ("_id",))}
    excluded = {q["_id"] for q in read_beir_jsonl(Path(args.exclude_dir) / "queries.jsonl", "query", ("_id",))} \
        if args.exclude_dir else set()
    ids = [q for q in sorted(qrels) if q in queries and q not in excluded
           and any(g > 0 and d in docs for d, g in qrels[q].items())]
    texts = [queries[q] for q in ids]
    positives = [sorted(d for d, g in qrels[q].items() if g > 0 and d in docs) for q in ids]

    embedders = [O1Embedder.from_pretrained(args.model, thought_cache=True, seed=s) for s in seeds]
    weight = embedders[0].settings.query_weight
    weight = 1.0 / (args.k + 1) if weight is None else weight
    thoughts = [sum(group, []) for group in zip(*[e.think(texts, k=args.k, batch_size=args.batch_size,
                                                          show_progress_bar=True) for e in embedders])]
    encoder = embedders[0].encoder.model  # the composite's sentence-transformers model

    def embed(strings: list[str]) -> np.ndarray:
        return encoder.encode(strings, normalize_embeddings=True, batch_size=64)

    doc_ids = list(docs)
    negatives = mine_negatives(texts, [set(p) for p in positives], doc_ids, [docs[d] for d in doc_ids],
                               [BM25Member([docs[d] for d in doc_ids])], args.num_negatives)
    n = len(thoughts[0]) if thoughts else 0
    bare = embed(texts)
    with_thought = embed([f"{q} {t}" for q, ts in zip(texts, thoughts) for t in ts]).reshape(len(texts), n, -1)
    kept, gains = 0, []
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") as out:
        for i, (query, pos, negs) in enumerate(zip(texts, positives, negatives)):
            targets = embed([docs[d] for d in pos] + [docs[d] for d in negs])
            p, ng = targets[:len(pos)], targets[len(pos):]

            def margin(v: np.ndarray) -> np.ndarray:  # best positive minus hardest negative, per candidate row
                return (v @ p.T).max(-1) - ((v @ ng.T).max(-1) if len(ng) else 0.0)
            candidates = _unit(weight * bare[i] + (1 - weight) * with_thought[i])
            scores, base = margin(candidates), float(margin(bare[i][None])[0])
            best = int(np.argmax(scores))
            if scores[best] - base > args.min_gain:
                kept += 1
                gains.append(float(scores[best] - base))
                out.write(json.dumps({"query_id": ids[i], "query": query, "pos": [docs[d] for d in pos],
                                      "neg": [docs[d] for d in negs], "thought": thoughts[i][best],
                                      "margin_gain": float(scores[best] - base)}) + "\n")
    return SelfSelection(args.output, len(texts), kept, float(np.mean(gains)) if gains else 0.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataclass_arguments(parser, SelfSelectArguments)
    result = self_select(from_namespace(SelfSelectArguments, parser.parse_args(argv)))
    print(f"kept {result.kept} of {result.queries} queries (mean margin gain {result.mean_gain:.4f}) -> "
          f"{result.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
