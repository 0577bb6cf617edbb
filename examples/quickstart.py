"""Quickstart: the core API. Think, embed, rank, on a slice of SciFact, with the bundled default model.

    python examples/quickstart.py            # offline; ~1 min on a laptop CPU
Hits marked * are the passages SciFact judges relevant.
"""
import numpy as np
from _scifact import embedder_options, example_args, load_scifact, show_hit, show_thoughts

from o1_retriever import O1Embedder

args = example_args(__doc__.splitlines()[0])
passages, queries = load_scifact(args.data, args.docs, args.queries)
embedder = O1Embedder.from_pretrained(**embedder_options(args))  # None: the bundled default model
print(f"{embedder} | {len(passages)} passages, {len(queries)} queries, k={args.k} thoughts per query")

# Documents are embedded directly: no thinking.
doc_vectors = embedder.encode_documents([p["text"] for p in passages])
# Queries: k thoughts each, every `query + thought` embedded, the k vectors averaged.
encoded = embedder.encode_queries([q["text"] for q in queries], k=args.k, return_thoughts=True)

for query, vector, thoughts in zip(queries, encoded.embeddings, encoded.thoughts):
    print(f"\nquery: {query['text']}")
    show_thoughts(thoughts)
    scores = doc_vectors @ vector / np.linalg.norm(vector)  # cosine: documents are unit vectors
    for rank, i in enumerate(np.argsort(-scores)[:3], 1):
        show_hit(rank, passages[i]["id"], passages[i]["title"], float(scores[i]), query["relevant"])
