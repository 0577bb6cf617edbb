"""Cost of a bundled model on this machine, each model in a fresh process: load time, documents/s, ms/query at
k=0 and k=3 (thought and vector caches off), peak resident memory. For issue 26's "new default against the old".
Usage: python scripts/cost_table.py [--models o1-retriever-default o1-retriever-minilm o1-retriever-joint]
       [--docs 128] [--queries 16] [--output cost.json]"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def measure(model: str, docs: int, queries: int, data: str) -> dict:
    started = time.perf_counter()
    import resource

    from o1_retriever import O1Embedder
    from o1_retriever.evaluation.data import document_text, read_beir_jsonl
    from o1_retriever.speed import timed
    emb = O1Embedder.from_pretrained(model, thought_cache=False, vector_cache=False)
    load = time.perf_counter() - started
    corpus = [document_text(d) for d in read_beir_jsonl(f"{data}/corpus.jsonl", "document", ("_id",))][:docs]
    texts = [q["text"] for q in read_beir_jsonl(f"{data}/queries.jsonl", "query", ("_id", "text"))][:queries]
    emb.encode_documents(corpus[:4])  # first-call set-up, not timed
    emb.encode_queries(texts[:2], k=3)
    row = {"model": model, "load_s": round(load, 2)}
    row["documents_per_s"] = round(len(corpus) / timed(lambda: emb.encode_documents(corpus, batch_size=32))[1], 2)
    for k in (0, 3):
        seconds = timed(lambda: emb.encode_queries(texts, k=k, batch_size=16))[1]
        row[f"ms_per_query_k{k}"] = round(seconds / len(texts) * 1000, 1)
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["o1-retriever-default", "o1-retriever-minilm", "o1-retriever-joint"])
    p.add_argument("--docs", type=int, default=128, help="SciFact passages embedded (the first N)")
    p.add_argument("--queries", type=int, default=16, help="SciFact queries (the first N)")
    p.add_argument("--data", default="../shared/data/scifact")
    p.add_argument("--output", default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure this model, print JSON
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.docs, args.queries, args.data)))
        return 0
    rows = []
    for model in args.models:  # a fresh process each: load time and peak memory are the model's own
        out = subprocess.run([sys.executable, __file__, "--one", model, "--docs", str(args.docs), "--queries",
                              str(args.queries), "--data", args.data], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    from o1_retriever.machine import describe, load_average
    report = {"command": "python scripts/cost_table.py " + " ".join(sys.argv[1:]),
              "machine": describe() | {"load_average": load_average()},
              "docs": args.docs, "queries": args.queries, "rows": rows}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
