"""A small real corpus for the examples: the passages relevant to a few SciFact test queries, plus
filler passages from the same corpus, so every search has a right answer to find among distractors."""
from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PASSAGE_CHARS = 700  # abstracts cut short: enough to match on, cheap to embed on a laptop CPU


def example_args(description: str, docs: int = 30, queries: int = 2) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("O1_DATA", DEFAULT_DATA)),
                        help="folder holding BEIR-format scifact/ (default: %(default)s)")
    parser.add_argument("--docs", type=int, default=docs, help="passages to index (default: %(default)s)")
    parser.add_argument("--queries", type=int, default=queries, help="queries to run (default: %(default)s)")
    parser.add_argument("--k", type=int, default=2, help="thoughts per query (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="length of each thought (default: %(default)s)")
    parser.add_argument("--thought-cache", default=None,
                        help="SQLite file for thoughts (default: the library's cache under ~/.cache/o1_retriever)")
    parser.add_argument("--persist-dir", default=None,
                        help="where a vector store keeps its files (default: a fresh temporary folder)")
    return parser.parse_args()


def load_scifact(data: Path, n_docs: int, n_queries: int) -> tuple[list[dict], list[dict]]:
    """(passages [{id, title, text}], queries [{id, text, relevant: set of passage ids}])."""
    root = Path(data) / "scifact"
    if not (root / "corpus.jsonl").exists():
        raise SystemExit(f"SciFact not found under {root}; pass --data DIR (BEIR layout) or set O1_DATA")
    with open(root / "qrels" / "test.tsv") as f:
        qrels: dict[str, set] = {}
        for row in list(csv.reader(f, delimiter="\t"))[1:]:
            qrels.setdefault(row[0], set()).add(row[1])
    with open(root / "queries.jsonl") as f:
        queries = [q for q in map(json.loads, f) if q["_id"] in qrels][:n_queries]
    wanted = set().union(*(qrels[q["_id"]] for q in queries))
    passages, filler = [], []
    with open(root / "corpus.jsonl") as f:
        for row in map(json.loads, f):
            passage = {"id": row["_id"], "title": row["title"], "text": f"{row['title']}. {row['text']}"[:PASSAGE_CHARS]}
            if row["_id"] in wanted:
                passages.append(passage)
            elif len(filler) < n_docs:
                filler.append(passage)
    passages += filler[:max(0, n_docs - len(passages))]
    return passages, [{"id": q["_id"], "text": q["text"], "relevant": qrels[q["_id"]]} for q in queries]


def embedder_options(args: argparse.Namespace) -> dict:
    options = {"max_new_tokens": args.max_new_tokens}
    if args.thought_cache:
        options["thought_cache"] = args.thought_cache
    return options


def show_thoughts(thoughts: list[str]) -> None:
    for i, thought in enumerate(thoughts, 1):
        print(f"  thought {i}: {thought.strip()}")


def show_hit(rank: int, passage_id: str, title: str, score: float | None, relevant: set) -> None:
    mark = "*" if passage_id in relevant else " "
    score_text = "" if score is None else f"{score:.3f} "
    print(f"  hit {rank}: {mark} {score_text}[{passage_id}] {title[:90]}")
