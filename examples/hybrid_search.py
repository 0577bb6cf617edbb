"""Hybrid search: the thinking dense ranking fused with BM25, in the library's own Chroma store (`O1Index`).

    python hybrid_search.py [--persist-dir DIR] [--k 3]
Hits marked * are the passages the demo queries' judgements call relevant.
Needs bm25s + PyStemmer: pip install -e ".[hybrid]" in the clone (examples/README.md: the whole install).
"""

from o1_retriever import O1Embedder
from o1_retriever.corpus import DEMO_CORPUS, demo_arguments, demo_queries, read_corpus
from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT
from o1_retriever.index import O1Index

args = demo_arguments(__doc__, temp_prefix="o1_hybrid_")
passages, queries = read_corpus(DEMO_CORPUS), demo_queries()[: args.queries]

embedder = O1Embedder.from_pretrained(max_new_tokens=args.max_new_tokens)
index = O1Index(embedder, path=args.persist_dir, collection="demo")
index.add([p.id for p in passages], [p.full_text for p in passages], [{"title": p.title} for p in passages])
print(f"{len(index)} passages in {args.persist_dir}")


def show(rank, hit, relevant):
    mark = "*" if hit.id in relevant else " "
    print(f"  hit {rank}: {mark} {hit.score:.3f} [{hit.id}] {hit.metadata['title']}")


texts = [q.text for q in queries]
dense = index.search(texts, top_k=3, k=args.k)
# BM25 is built over the stored texts on the first hybrid search; the thoughts (cached) are the same.
hybrid = index.search(texts, top_k=3, k=args.k, hybrid=True)
for query, dense_hits, hybrid_hits in zip(queries, dense, hybrid):
    print(f"\nquery: {query.text}")
    for i, thought in enumerate(hybrid_hits[0].thoughts if hybrid_hits else [], 1):
        print(f"  thought {i}: {' '.join(thought.split())}")
    print("  dense (cosine):")
    for rank, hit in enumerate(dense_hits, 1):
        show(rank, hit, query.relevant)
    print(f"  hybrid, dense share {DEFAULT_DENSE_WEIGHT} (fused z-score):")
    for rank, hit in enumerate(hybrid_hits, 1):
        show(rank, hit, query.relevant)
