"""Compare ways to fuse the default model's dense ranking with BM25 on held-out queries (never test queries):
z-score fusion (o1_retriever.fusion, what `hybrid=` uses), LlamaIndex's dist_based_score, reciprocal-rank fusion
(LangChain's EnsembleRetriever) and min-max fusion, at several dense shares and candidate-pool depths.

    .venv/bin/python scripts/fusion_methods.py --dataset runs/default/scifact_dev --split dev \
        --output benchmarks/stage1/hybrid_dev/fusion_methods.json
k=0 (the bare query) by default: no thinking, about a minute once the corpus vectors are cached.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from o1_retriever import O1Embedder
from o1_retriever.bm25 import BM25Searcher
from o1_retriever.evaluation.data import load_beir
from o1_retriever.evaluation.metrics import evaluate_run
from o1_retriever.evaluation.search import corpus_embeddings, exact_search
from o1_retriever.fusion import fuse_many

WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def rrf(dense, lexical, w, c=60):
    """Weighted reciprocal-rank fusion, as LangChain's EnsembleRetriever computes it."""
    out = []
    for d, l in zip(dense, lexical):
        scores = {}
        for hits, weight in ((d, w), (l, 1 - w)):
            for rank, (doc, _) in enumerate(hits):
                scores[doc] = scores.get(doc, 0.0) + weight / (c + rank + 1)
        out.append(sorted(scores.items(), key=lambda x: -x[1]))
    return out


def scaled(dense, lexical, w, dist_based):
    """LlamaIndex's relative-score fusion: min-max per list (dist_based: over mean ± 3 sd); missing = 0."""
    out = []
    for d, l in zip(dense, lexical):
        scores = {}
        for hits, weight in ((d, w), (l, 1 - w)):
            v = np.array([s for _, s in hits]) if hits else np.zeros(1)
            lo, hi = (v.mean() - 3 * v.std(), v.mean() + 3 * v.std()) if dist_based else (v.min(), v.max())
            for doc, s in hits:
                scores[doc] = scores.get(doc, 0.0) + weight * ((s - lo) / (hi - lo) if hi > lo else 1.0)
        out.append(sorted(scores.items(), key=lambda x: -x[1]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="BEIR folder of held-out queries")
    p.add_argument("--split", default="dev")
    p.add_argument("--k", type=int, default=0, help="thoughts per query (default 0: the bare query)")
    p.add_argument("--pools", default="10,100", help="candidates per side, comma-separated")
    p.add_argument("--output", required=True, help="JSON to write")
    args = p.parse_args()
    ds = load_beir(args.dataset, args.split)
    emb = O1Embedder.from_pretrained()
    ids, qids, queries = ds.doc_ids(), list(ds.queries), list(ds.queries.values())
    docs, _ = corpus_embeddings(emb, ids, ds.doc_texts())
    pools = [int(x) for x in args.pools.split(",")]
    dense_all = exact_search(emb.encode_queries(queries, k=args.k), docs, ids, max(pools))
    lexical_all = BM25Searcher(ids, ds.doc_texts()).search(queries, max(pools))

    def ndcg(run):
        return round(evaluate_run(ds.qrels, {q: dict(h) for q, h in zip(qids, run)}).ndcg_at_10, 4)

    results = {"bm25": ndcg(lexical_all), "dense": ndcg(dense_all)}
    methods = {"zscore (o1_retriever.fusion)": lambda d, l, w: fuse_many(d, l, w),
               "dist_based_score (LlamaIndex)": lambda d, l, w: scaled(d, l, w, True),
               "relative_score / min-max (LlamaIndex)": lambda d, l, w: scaled(d, l, w, False),
               "rrf c=60 (LangChain EnsembleRetriever)": rrf}
    for pool in pools:
        dense, lexical = [h[:pool] for h in dense_all], [h[:pool] for h in lexical_all]
        for name, method in methods.items():
            results[f"{name}, pool {pool}"] = {str(w): ndcg(method(dense, lexical, w)) for w in WEIGHTS}
            print(f"pool {pool:4d}  {name:40s} " + "  ".join(f"w={w}: {v:.4f}" for w, v in
                                                           results[f"{name}, pool {pool}"].items()), flush=True)
    meta = {"dataset": str(args.dataset), "split": args.split, "queries": len(qids), "k": args.k,
            "model": "o1-retriever-default", "weights": "dense share w", "metric": "nDCG@10"}
    Path(args.output).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(f"bm25 {results['bm25']}  dense {results['dense']}\nwrote {args.output}")
    print(f"wrote {plot(results, pools, Path(args.output).with_suffix('.png'), f'{len(qids)} held-out queries, k={args.k}')}")


def plot(results: dict, pools: list[int], path: Path, title: str) -> Path:
    from o1_retriever.evaluation.plot import _pyplot
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(pools), figsize=(5 * len(pools), 4), sharey=True, squeeze=False)
    for ax, pool in zip(axes[0], pools):
        for key, by_weight in results.items():
            if key.endswith(f", pool {pool}"):
                ax.plot([float(w) for w in by_weight], list(by_weight.values()), marker="o", label=key.split(",")[0])
        ax.axhline(results["bm25"], color="gray", linestyle="--", label=f"BM25 {results['bm25']:.3f}")
        ax.axhline(results["dense"], color="black", linestyle=":", label=f"dense {results['dense']:.3f}")
        ax.set_title(f"{pool} candidates per side")
        ax.set_xlabel("dense share w")
    axes[0][0].set_ylabel("nDCG@10")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"fusing the default model with BM25 ({title})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
