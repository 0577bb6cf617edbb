"""Plain Chroma: a collection whose queries think. `collection.query(query_texts=...)` writes thoughts,
embeds them with the query and searches; reopening the persisted collection rebuilds the function.

    python examples/chroma_native.py [--persist-dir DIR]
Hits marked * are the passages SciFact judges relevant.
"""
import tempfile

import chromadb
from _scifact import embedder_options, example_args, load_scifact, show_hit, show_thoughts

from o1_retriever import O1Embedder
from o1_retriever.chroma import O1EmbeddingFunction  # importing it registers the function with Chroma

args = example_args(__doc__.splitlines()[0])
persist_dir = args.persist_dir or tempfile.mkdtemp(prefix="o1_chroma_")
passages, queries = load_scifact(args.data, args.docs, args.queries)

embedder = O1Embedder.from_pretrained(**embedder_options(args))
function = O1EmbeddingFunction(embedder, num_thoughts=args.k)  # n_results is the number of documents
client = chromadb.PersistentClient(path=persist_dir)
collection = client.get_or_create_collection("scifact_slice", embedding_function=function)
collection.upsert(ids=[p["id"] for p in passages], documents=[p["text"] for p in passages],
                  metadatas=[{"title": p["title"]} for p in passages])
print(f"{collection.count()} passages in {persist_dir}, space={collection.configuration_json['hnsw']['space']}")

texts = [q["text"] for q in queries]
results = collection.query(query_texts=texts, n_results=2)
for query, thoughts, ids, distances, metas in zip(queries, function.think(texts), results["ids"],
                                                  results["distances"], results["metadatas"]):
    print(f"\nquery: {query['text']}")
    show_thoughts(thoughts)  # the same (seeded, cached) thoughts the query vector came from
    for rank, (pid, distance, meta) in enumerate(zip(ids, distances, metas), 1):
        show_hit(rank, pid, meta["title"], 1 - distance, query["relevant"])

# A new client on the same directory, no embedding function given: Chroma rebuilds ours from the
# collection's config (in this process it reuses the loaded model rather than loading a second one).
reopened = chromadb.PersistentClient(path=persist_dir).get_collection("scifact_slice")
again = reopened.query(query_texts=texts, n_results=2)
rebuilt = reopened.configuration["embedding_function"]
print(f"\nreopened: function {rebuilt.name()!r} rebuilt from {rebuilt.get_config()['model'] or 'the default model'}, "
      f"same model instance = {rebuilt.embedder is embedder}, same hits = {again['ids'] == results['ids']}")
