"""LlamaIndex: a VectorStoreIndex on a persistent Chroma collection embedded by O1Embedding, searched by
O1Retriever (thoughts attached to every hit), and a RetrieverQueryEngine on top.

    python examples/llamaindex_rag.py [--persist-dir DIR]
The answer step uses LlamaIndex's MockLLM (it echoes its prompt) so the example runs offline; put any
LlamaIndex LLM in its place. Hits marked * are the passages SciFact judges relevant.
"""
import tempfile

import chromadb
from _scifact import embedder_options, example_args, load_scifact, show_hit, show_thoughts
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import get_response_synthesizer
from llama_index.embeddings.o1 import O1Embedding
from llama_index.retrievers.o1 import O1Retriever
from llama_index.vector_stores.chroma import ChromaVectorStore

from o1_retriever import O1Embedder

args = example_args(__doc__.splitlines()[0])
passages, queries = load_scifact(args.data, args.docs, args.queries)
embedder = O1Embedder.from_pretrained(**embedder_options(args))  # loaded once, shared below

# 1. Index: documents are embedded directly (no thinking) into a persistent Chroma collection.
client = chromadb.PersistentClient(path=args.persist_dir or tempfile.mkdtemp(prefix="o1_llamaindex_"))
vector_store = ChromaVectorStore(chroma_collection=client.get_or_create_collection(
    "scifact_slice", metadata={"hnsw:space": "cosine"}))
documents = [Document(text=p["text"], metadata={"corpus_id": p["id"], "title": p["title"]},
                      excluded_embed_metadata_keys=["corpus_id", "title"]) for p in passages]
embed_model = O1Embedding(embedder=embedder, num_thoughts=args.k)
index = VectorStoreIndex.from_documents(documents, storage_context=StorageContext.from_defaults(
    vector_store=vector_store), embed_model=embed_model)
print(f"indexed {len(documents)} SciFact passages with {embedder}")

# 2. Retrieve: the query is thought about k times before it is embedded.
retriever = O1Retriever(vector_store=vector_store, embedder=embedder, similarity_top_k=2, num_thoughts=args.k)
for query in queries:
    print(f"\nquery: {query['text']}")
    hits = retriever.retrieve(query["text"])
    show_thoughts(retriever.last_thoughts)
    for rank, hit in enumerate(hits, 1):
        show_hit(rank, hit.node.metadata["corpus_id"], hit.node.metadata["title"], hit.score, query["relevant"])

# 3. Answer: the same retriever inside a query engine (thoughts stay out of the LLM prompt).
engine = RetrieverQueryEngine(retriever=retriever, response_synthesizer=get_response_synthesizer(
    llm=MockLLM(), response_mode="compact"))
response = engine.query(queries[0]["text"])
print(f"\nquery engine sources: {[n.node.metadata['corpus_id'] for n in response.source_nodes]}")
print("MockLLM saw this prompt (first lines):")
for line in str(response).strip().splitlines()[:4]:
    print(f"  | {line[:110]}")
