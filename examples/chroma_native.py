"""Plain Chroma: a collection whose queries think. `collection.query(query_texts=...)` writes thoughts,
embeds them with the query and searches; reopening the persisted collection rebuilds the function.

    python chroma_native.py [--persist-dir DIR] [--k 3]
Hits marked * are the passages the demo queries' judgements call relevant.
"""

import chromadb

from o1_retriever import O1Embedder
from o1_retriever.chroma import O1EmbeddingFunction  # importing it registers the function with Chroma
from o1_retriever.corpus import DEMO_CORPUS, demo_arguments, demo_queries, read_corpus

args = demo_arguments(__doc__, temp_prefix="o1_chroma_")
passages, queries = read_corpus(DEMO_CORPUS), demo_queries()[: args.queries]

embedder = O1Embedder.from_pretrained(max_new_tokens=args.max_new_tokens)
function = O1EmbeddingFunction(embedder, num_thoughts=args.k)  # n_results is the number of documents
client = chromadb.PersistentClient(path=args.persist_dir)
collection = client.get_or_create_collection("demo", embedding_function=function)
collection.upsert(ids=[p.id for p in passages], documents=[p.full_text for p in passages],
                  metadatas=[{"title": p.title} for p in passages])
print(f"{collection.count()} passages in {args.persist_dir}, space={collection.configuration_json['hnsw']['space']}")

texts = [q.text for q in queries]
results = collection.query(query_texts=texts, n_results=2)
for query, thoughts, ids, distances, metas in zip(queries, function.think(texts), results["ids"],
                                                  results["distances"], results["metadatas"]):
    print(f"\nquery: {query.text}")
    for i, thought in enumerate(thoughts, 1):  # the same (seeded, cached) thoughts the query vector came from
        print(f"  thought {i}: {' '.join(thought.split())}")
    for rank, (pid, distance, meta) in enumerate(zip(ids, distances, metas), 1):
        mark = "*" if pid in query.relevant else " "
        print(f"  hit {rank}: {mark} {1 - distance:.3f} [{pid}] {meta['title']}")

# A new client on the same folder, no embedding function given: Chroma rebuilds ours from the collection's
# config (in this process it reuses the loaded model rather than loading a second one).
reopened = chromadb.PersistentClient(path=args.persist_dir).get_collection("demo")
again = reopened.query(query_texts=texts, n_results=2)
rebuilt = reopened.configuration["embedding_function"]
print(f"\nreopened: function {rebuilt.name()!r} rebuilt from {rebuilt.get_config()['model'] or 'the default model'}, "
      f"same model instance = {rebuilt.embedder is embedder}, same hits = {again['ids'] == results['ids']}")
