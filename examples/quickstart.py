"""Quickstart: the core API. Think, embed, rank, on the bundled demo corpus, with the bundled default model.

    python quickstart.py [--k 3] [--queries 3]      # offline; under a minute on a laptop CPU
Hits marked * are the passages the demo queries' judgements call relevant.
"""
import argparse

import numpy as np

from o1_retriever import O1Embedder
from o1_retriever.corpus import DEMO_CORPUS, demo_queries, read_corpus

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--k", type=int, default=3, help="thoughts per query")
parser.add_argument("--queries", type=int, default=3, help="how many demo queries to run")
parser.add_argument("--max-new-tokens", type=int, default=48, help="length of each thought, in tokens")
args = parser.parse_args()

passages, queries = read_corpus(DEMO_CORPUS), demo_queries()[: args.queries]
embedder = O1Embedder.from_pretrained(max_new_tokens=args.max_new_tokens)  # no name: the bundled default
print(f"{embedder} | {len(passages)} passages, {len(queries)} queries, k={args.k} thoughts per query")

# Documents are embedded directly: no thinking.
doc_vectors = embedder.encode_documents([p.full_text for p in passages])
# Queries: k thoughts each, every `query + thought` embedded, the vectors averaged.
encoded = embedder.encode_queries([q.text for q in queries], k=args.k, return_thoughts=True)

for query, vector, thoughts in zip(queries, encoded.embeddings, encoded.thoughts):
    print(f"\nquery: {query.text}")
    for i, thought in enumerate(thoughts, 1):
        print(f"  thought {i}: {' '.join(thought.split())}")  # one line: a thought may hold newlines
    scores = doc_vectors @ vector / np.linalg.norm(vector)  # cosine: documents are unit vectors
    for rank, i in enumerate(np.argsort(-scores)[:3], 1):
        mark = "*" if passages[i].id in query.relevant else " "
        print(f"  hit {rank}: {mark} {scores[i]:.3f} [{passages[i].id}] {passages[i].title}")
