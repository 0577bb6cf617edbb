"""Would a thinker that reads the first retrieved passages help out of domain? A cheap upper-bound check first:
plain dense pseudo-relevance feedback (Rocchio on vectors: q' = a·q + (1−a)·mean of the top m documents) with
all-MiniLM-L6-v2 alone, no thinker, on one dev set, beside MiniLM in the same run. A thinker fed those passages
can at best restate them, so if this does not beat MiniLM, that thinker is not worth training here.

    python scripts/dense_prf_check.py --dataset ../shared/data/cisi --split test \
        --output benchmarks/composite_default/dense_prf_cisi.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import torch

from o1_retriever import O1Embedder
from o1_retriever.default_model import minilm_path
from o1_retriever.evaluation.data import document_text, load_beir
from o1_retriever.evaluation.metrics import evaluate_run
from o1_retriever.encoding import SentenceEncoder
from o1_retriever.evaluation.search import corpus_embeddings, exact_search


def ndcg(dataset, query_ids, vectors, doc_vectors, doc_ids) -> float:
    hits = exact_search(vectors, doc_vectors, doc_ids)
    return evaluate_run(dataset.qrels, {q: dict(h) for q, h in zip(query_ids, hits)}).ndcg_at_10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    dataset = load_beir(args.dataset, args.split)
    encoder = O1Embedder(None, SentenceEncoder.load(str(minilm_path()), torch.device("cpu")), name="all-MiniLM-L6-v2",
                         thought_cache=False)  # an encoder alone, as eval's --baseline-encoder: no thinking
    doc_ids = list(dataset.corpus)
    docs, _ = corpus_embeddings(encoder, doc_ids, [document_text(dataset.corpus[d]) for d in doc_ids])
    query_ids = list(dataset.queries)
    queries = encoder.encode_queries([dataset.queries[q] for q in query_ids], k=0)
    order = np.argsort(-(queries @ docs.T), axis=1)
    rows = {"minilm": ndcg(dataset, query_ids, queries, docs, doc_ids)}
    for m in (1, 3, 5):
        feedback = docs[order[:, :m]].mean(axis=1)
        for a in (0.5, 0.7, 0.85):
            mixed = a * queries + (1 - a) * feedback
            mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
            rows[f"top{m}_query_share{a}"] = ndcg(dataset, query_ids, mixed, docs, doc_ids)
    for name, score in rows.items():
        print(f"{name:24s} {score:.4f}")
    args.output.write_text(json.dumps({"dataset": dataset.name, "split": args.split, "ndcg@10": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
