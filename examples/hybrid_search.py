"""Hybrid search: the thinking dense ranking fused with BM25, in the library's own Chroma store (`O1Index`).

    python examples/hybrid_search.py [--persist-dir DIR]
Hits marked * are the passages SciFact judges relevant. Needs bm25s + PyStemmer: pip install 'o1-retriever[hybrid]'.
"""
import tempfile

from _scifact import embedder_options, example_args, load_scifact, show_hit, show_thoughts

from o1_retriever import O1Embedder
from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT
from o1_retriever.store import O1Index

args = example_args(__doc__.splitlines()[0])
persist_dir = args.persist_dir or tempfile.mkdtemp(prefix="o1_hybrid_")
passages, queries = load_scifact(args.data, args.docs, args.queries)
titles = {p["id"]: p["title"] for p in passages}

embedder = O1Embedder.from_pretrained(**embedder_options(args))
index = O1Index(embedder, path=persist_dir, collection="scifact-slice")
index.add([p["id"] for p in passages], [p["text"] for p in passages], [{"title": p["title"]} for p in passages])
print(f"{len(index)} passages in {persist_dir}")

texts = [q["text"] for q in queries]
dense = index.search(texts, top_k=3, k=args.k)
# BM25 is built over the stored texts on the first hybrid search; the thoughts (cached) are the same.
hybrid = index.search(texts, top_k=3, k=args.k, hybrid=True)
for query, dense_hits, hybrid_hits in zip(queries, dense, hybrid):
    print(f"\nquery: {query['text']}")
    show_thoughts(hybrid_hits[0].thoughts if hybrid_hits else [])
    print("  dense (cosine):")
    for rank, h in enumerate(dense_hits, 1):
        show_hit(rank, h.id, titles[h.id], h.score, query["relevant"])
    print(f"  hybrid, dense share {DEFAULT_DENSE_WEIGHT} (fused z-score):")
    for rank, h in enumerate(hybrid_hits, 1):
        show_hit(rank, h.id, h.metadata["title"], h.score, query["relevant"])
