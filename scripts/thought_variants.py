"""What else could a composite model do with the thoughts it already writes? Dev sets only (RULE.md's three).

For one composite model, reads its k=3 thoughts at seeds 0..2 (from the thought cache, or writes them) and its
greedy thought, embeds them with the model's encoder once, then scores ways of turning them into a ranking:
the bare query's share of the vector, thoughts embedded alone (HyDE-like), thoughts weighted by their similarity
to the query, more thoughts (pooling the three seeds' samples: k = 1, 2, 3, 6, 9), and thoughts as BM25 query
expansion (query2doc-style), alone and fused with the dense row. Every row is next to the encoder alone (MiniLM)
and MiniLM+BM25, measured in the same run. No choice is made here: RULE.md's candidates are evaluated by
`scripts/eval_composite_dev.sh`.

    python scripts/thought_variants.py --model runs/c/cand_w0.3 --output benchmarks/composite_default/variants.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from o1_retriever import O1Embedder
from o1_retriever.aggregation import aggregate
from o1_retriever.bm25 import BM25Searcher
from o1_retriever.evaluation.data import load_beir
from o1_retriever.evaluation.metrics import evaluate_run
from o1_retriever.evaluation.search import corpus_embeddings, exact_search
from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT, fuse_many

DEV_SETS = {"scifact_dev": ("runs/c/scifact_dev", "dev"), "nfcorpus_dev": ("runs/c/nfcorpus_dev100", "dev"),
            "cisi": ("../shared/data/cisi", "test")}
SEEDS = (0, 1, 2)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def summary(scores: list[float]) -> dict:
    return {"mean": float(np.mean(scores)), "spread": float(max(scores) - min(scores)), "seeds": scores}


def measure(model: str, name: str, path: str, split: str) -> dict:
    data = load_beir(path, split)
    qids = [q for q in data.qrels if q in data.queries]
    queries = [data.queries[q] for q in qids]
    ids = list(data.corpus)
    texts = [(data.corpus[i]["title"] + " " + data.corpus[i]["text"]).strip() for i in ids]
    embedders = {seed: O1Embedder.from_pretrained(model, thought_cache=True, seed=seed) for seed in SEEDS}
    encoder = embedders[0].encoder.model  # the composite's sentence-transformers model
    docs, _ = corpus_embeddings(embedders[0], ids, texts)

    def embed(strings: list[str], k: int) -> np.ndarray:
        return encoder.encode(strings, normalize_embeddings=True, batch_size=64).reshape(len(queries), k, -1)

    thoughts = {seed: embedders[seed].think(queries, k=3) for seed in SEEDS}
    greedy = O1Embedder.from_pretrained(model, thought_cache=True, temperature=0.0).think(queries, k=1)
    query = encoder.encode(queries, normalize_embeddings=True, batch_size=64)
    with_query = {s: embed([q + " " + t for q, ts in zip(queries, thoughts[s]) for t in ts], 3) for s in SEEDS}
    alone = {s: embed([t for ts in thoughts[s] for t in ts], 3) for s in SEEDS}
    greedy_vectors = embed([q + " " + ts[0] for q, ts in zip(queries, greedy)], 1)

    def ndcg(hits) -> float:
        return evaluate_run(data.qrels, {q: dict(h) for q, h in zip(qids, hits)}).ndcg_at_10

    def dense(vectors: np.ndarray):
        return exact_search(vectors, docs, ids)

    bm25 = BM25Searcher(ids, texts)
    lexical, query_hits = bm25.search(queries), dense(query)
    row = {"queries": len(qids), "minilm": ndcg(query_hits), "bm25": ndcg(lexical),
           "minilm_bm25": ndcg(fuse_many(query_hits, lexical, DEFAULT_DENSE_WEIGHT, 100))}

    def mixed(weight: float, thought_vectors: np.ndarray) -> np.ndarray:  # the composite's own aggregation
        return aggregate(thought_vectors, "mean_with_query", query, weight)

    for weight in (0.5, 0.3, 0.0):
        row[f"query+thought, query share {weight}"] = summary([ndcg(dense(mixed(weight, with_query[s]))) for s in SEEDS])
    for weight in (0.5, 0.7):
        row[f"thought alone, query share {weight}"] = summary([ndcg(dense(mixed(weight, alone[s]))) for s in SEEDS])

    def similarity_weighted(s: int, tau: float = 0.05) -> np.ndarray:  # a drifting thought counts less
        v = with_query[s]
        att = np.exp(np.einsum("nkd,nd->nk", v, query) / tau)
        att /= att.sum(1, keepdims=True)
        return unit(0.3 * query + 0.7 * (att[..., None] * v).sum(1))
    row["similarity-weighted thoughts, query share 0.3"] = summary([ndcg(dense(similarity_weighted(s))) for s in SEEDS])
    row["greedy thought (T=0), k=1, query share 0.3"] = ndcg(dense(mixed(0.3, greedy_vectors)))

    pooled = np.concatenate([with_query[s] for s in SEEDS], 1)  # 9 independent samples per query
    draws = {1: [[0], [3], [6]], 2: [[0, 1], [3, 4], [6, 7]], 3: [[0, 1, 2], [3, 4, 5], [6, 7, 8]],
             6: [[0, 1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8], [0, 1, 2, 6, 7, 8]], 9: [list(range(9))]}
    row["k sweep, query share 0.3"] = {k: summary([ndcg(dense(mixed(0.3, pooled[:, d]))) for d in picks])
                                       for k, picks in draws.items()}

    expanded = {s: bm25.search([" ".join([q] * 5 + ts) for q, ts in zip(queries, thoughts[s])]) for s in SEEDS}
    row["bm25, query x5 + thoughts"] = summary([ndcg(expanded[s]) for s in SEEDS])
    row["minilm + bm25(query x5 + thoughts)"] = summary(
        [ndcg(fuse_many(query_hits, expanded[s], DEFAULT_DENSE_WEIGHT, 100)) for s in SEEDS])
    return row


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4))
    for ax, (name, row) in zip(np.atleast_1d(axes), results.items()):
        sweep = row["k sweep, query share 0.3"]
        ks = [int(k) for k in sweep]
        means = np.array([sweep[k]["mean"] for k in sweep])
        lows = means - np.array([sweep[k]["mean"] - min(sweep[k]["seeds"]) for k in sweep])
        highs = np.array([max(sweep[k]["seeds"]) for k in sweep])
        ax.plot(ks, means, "o-", label="thoughts + query (share 0.3)")
        ax.fill_between(ks, lows, highs, alpha=0.2)
        ax.axhline(row["minilm"], color="k", ls="--", label="MiniLM")
        ax.set(title=f"{name} ({row['queries']} q)", xlabel="thoughts per query (k)", ylabel="nDCG@10")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="composite model directory")
    parser.add_argument("--output", required=True, help="JSON to write (a PNG of the k sweep beside it)")
    parser.add_argument("--sets", nargs="+", default=list(DEV_SETS), choices=list(DEV_SETS))
    args = parser.parse_args()
    results = {}
    for name in args.sets:
        results[name] = measure(args.model, name, *DEV_SETS[name])
        print(name, json.dumps({k: v if isinstance(v, (int, float)) else v.get("mean") for k, v in
                                results[name].items() if not isinstance(v, dict) or "mean" in v}), flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "seeds": list(SEEDS), "sets": results}, indent=1))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
