"""What the shipped thinker writes on the three dev sets of RULE.md: how long its thoughts are, how many are (nearly)
empty, and how many restate the query. A diagnostic of the thoughts themselves; it scores nothing and chooses
nothing (retrieval with these thoughts: `thought_variants.py`, `decision.json`).

    bash scripts/eval_composite_dev.sh ...   # makes runs/c/scifact_dev and runs/c/nfcorpus_dev100 first
    python scripts/thought_shape.py --output benchmarks/composite_default/thought_shape.json
"""
from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from o1_retriever import O1Embedder
from o1_retriever.evaluation.data import load_beir

DEV_SETS = {"scifact_dev": ("runs/c/scifact_dev", "dev"), "nfcorpus_dev": ("runs/c/nfcorpus_dev100", "dev"),
            "cisi": ("../shared/data/cisi", "test")}


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def restates(query: str, thought: str) -> bool:
    """Most of the thought's words (>= 80%) are the query's: it adds next to nothing the query does not say."""
    said, own = words(thought), set(words(query))
    return bool(said) and sum(w in own for w in said) / len(said) >= 0.8


def shape(embedder: O1Embedder, queries: list[str], k: int) -> dict:
    thoughts = embedder.think(queries, k=k)
    flat = [(q, t) for q, ts in zip(queries, thoughts) for t in ts]
    count = len(flat)
    return {"queries": len(queries), "thoughts": count,
            "mean_words": sum(len(words(t)) for _, t in flat) / count,
            "share_under_5_words": sum(len(words(t)) < 5 for _, t in flat) / count,
            "share_restating_the_query": sum(restates(q, t) for q, t in flat) / count,
            "share_queries_with_identical_thoughts": sum(len(set(ts)) < len(ts) for ts in thoughts) / len(queries),
            "examples": [{"query": q, "thoughts": ts} for q, ts in list(zip(queries, thoughts))[:5]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model directory (default: the bundled default)")
    parser.add_argument("--queries", type=int, default=50, help="queries per dev set, a seeded sample")
    parser.add_argument("--k", type=int, default=3, help="thoughts per query")
    parser.add_argument("--output", required=True, help="JSON file to write")
    args = parser.parse_args()
    embedder = O1Embedder.from_pretrained(args.model, thought_cache=True)
    report = {"model": args.model or "bundled default", "settings": str(embedder.settings), "sets": {}}
    for name, (path, split) in DEV_SETS.items():
        data = load_beir(path, split)
        qids = sorted(q for q in data.qrels if q in data.queries)
        random.Random(0).shuffle(qids)
        report["sets"][name] = shape(embedder, [data.queries[q] for q in qids[:args.queries]], args.k)
        print(name, {k: v for k, v in report["sets"][name].items() if k != "examples"}, flush=True)
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
