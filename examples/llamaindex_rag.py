"""LlamaIndex: a VectorStoreIndex on a persistent Chroma collection embedded by O1Embedding, searched by
O1Retriever (thoughts attached to every hit), and a RetrieverQueryEngine on top.

    python llamaindex_rag.py [--persist-dir DIR] [--k 3]
The answer step uses LlamaIndex's MockLLM (it echoes its prompt) so the example runs offline; put any
LlamaIndex LLM in its place. Hits marked * are the passages the demo queries' judgements call relevant.
Needs (from a clone; these are not on PyPI): pip install -e integrations/llama-index-embeddings-o1 \
    -e integrations/llama-index-retrievers-o1   (examples/README.md: the whole install)
"""

import chromadb
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import get_response_synthesizer
from llama_index.embeddings.o1 import O1Embedding
from llama_index.retrievers.o1 import O1Retriever
from llama_index.vector_stores.chroma import ChromaVectorStore

from o1_retriever import O1Embedder
from o1_retriever.corpus import DEMO_CORPUS, demo_arguments, demo_queries, read_corpus

args = demo_arguments(__doc__, temp_prefix="o1_llamaindex_")
passages, queries = read_corpus(DEMO_CORPUS), demo_queries()[: args.queries]
embedder = O1Embedder.from_pretrained(max_new_tokens=args.max_new_tokens)  # loaded once, shared below

# 1. Index: documents are embedded directly (no thinking) into a persistent Chroma collection.
client = chromadb.PersistentClient(path=args.persist_dir)
collection = client.get_or_create_collection("demo", metadata={"hnsw:space": "cosine"})
vector_store = ChromaVectorStore(chroma_collection=collection)
embed_model = O1Embedding(embedder=embedder, num_thoughts=args.k)
if collection.count():  # a rerun on the same --persist-dir: LlamaIndex gives nodes new ids, so adding again would
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)  # store every passage twice
    print(f"reopened {collection.count()} passages in {args.persist_dir} with {embedder}")
else:
    documents = [Document(text=p.full_text, metadata={"corpus_id": p.id, "title": p.title},
                          excluded_embed_metadata_keys=["corpus_id", "title"]) for p in passages]
    index = VectorStoreIndex.from_documents(documents, storage_context=StorageContext.from_defaults(
        vector_store=vector_store), embed_model=embed_model)
    print(f"indexed {len(documents)} passages with {embedder}")

# 2. Retrieve: the query is thought about k times before it is embedded.
retriever = O1Retriever(vector_store=vector_store, embedder=embedder, similarity_top_k=2, num_thoughts=args.k)
for query in queries:
    print(f"\nquery: {query.text}")
    hits = retriever.retrieve(query.text)
    for i, thought in enumerate(retriever.last_thoughts, 1):
        print(f"  thought {i}: {' '.join(thought.split())}")
    for rank, hit in enumerate(hits, 1):
        pid = hit.node.metadata["corpus_id"]
        mark = "*" if pid in query.relevant else " "
        print(f"  hit {rank}: {mark} {hit.score:.3f} [{pid}] {hit.node.metadata['title']}")

# 3. Answer: the same retriever inside a query engine (thoughts stay out of the LLM prompt).
engine = RetrieverQueryEngine(retriever=retriever, response_synthesizer=get_response_synthesizer(
    llm=MockLLM(), response_mode="compact"))
response = engine.query(queries[0].text)
print(f"\nquery engine sources: {[n.node.metadata['corpus_id'] for n in response.source_nodes]}")
print("MockLLM saw this prompt (first lines):")
for line in str(response).strip().splitlines()[:4]:
    print(f"  | {line[:110]}")
