"""O1Embedding(url=...) against a real `o1-retriever serve` app on a loopback port (uvicorn in a thread of this
process, serving the tiny model): the same vectors and thoughts as the in-process engine, a VectorStoreIndex that
retrieves what the local model retrieves, serialisation without the key, a clear error for a wrong key."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from llama_index.core import Document, VectorStoreIndex  # noqa: E402

from llama_index.embeddings.o1 import O1Embedding  # noqa: E402
from o1_retriever.server import BackgroundServer, O1ServerError  # noqa: E402

KEY = "llama-index-test-key"


@pytest.fixture(scope="module")
def url(tiny_embedder):
    with BackgroundServer(tiny_embedder, name="tiny", api_key=KEY) as server:
        yield server.url


def test_url_embeddings_equal_in_process(url, tiny_embedder, scifact_docs, scifact_queries):
    remote = O1Embedding(url=url, api_key=KEY, num_thoughts=2, embed_batch_size=3)
    local = O1Embedding(embedder=tiny_embedder, num_thoughts=2)
    assert remote.model_name == "tiny" and remote.embedder.fingerprint == tiny_embedder.fingerprint
    query = scifact_queries[0]
    np.testing.assert_allclose(remote.get_query_embedding(query), local.get_query_embedding(query), atol=1e-6)
    assert remote.last_thoughts == local.last_thoughts and len(remote.last_thoughts) == 2
    texts = [d["text"] for d in scifact_docs[:5]]  # 5 texts, 3 per request
    np.testing.assert_allclose(remote.get_text_embedding_batch(texts), local.get_text_embedding_batch(texts),
                               atol=1e-6)
    np.testing.assert_allclose(asyncio.run(remote.aget_query_embedding(scifact_queries[1])),
                               tiny_embedder.encode_queries(scifact_queries[1], k=2), atol=1e-6)
    assert not np.allclose(remote.get_query_embedding(query), remote.get_text_embedding(query), atol=1e-4)


def test_index_over_the_server_retrieves_what_the_local_model_does(url, tiny_embedder, scifact_docs, scifact_queries):
    documents = [Document(text=d["text"], id_=d["id"]) for d in scifact_docs[:8]]
    hits = {}
    for where, model in (("remote", O1Embedding(url=url, api_key=KEY, num_thoughts=1)),
                         ("local", O1Embedding(embedder=tiny_embedder, num_thoughts=1))):
        retriever = VectorStoreIndex.from_documents(documents, embed_model=model).as_retriever(similarity_top_k=3)
        hits[where] = [(n.node.ref_doc_id, round(n.score, 5)) for n in retriever.retrieve(scifact_queries[0])]
    assert hits["remote"] == hits["local"] and len(hits["remote"]) == 3


def test_to_dict_keeps_the_url_not_the_key(url, tiny_embedder, monkeypatch):
    data = O1Embedding(url=url, api_key=KEY, num_thoughts=2).to_dict()
    assert data["url"] == url and data["model_name"] == "tiny" and KEY not in str(data)
    monkeypatch.setenv("O1_RETRIEVER_API_KEY", KEY)  # a reloaded model reads the key from the server's variable
    reloaded = O1Embedding.from_dict(data)
    assert reloaded.num_thoughts == 2
    np.testing.assert_allclose(reloaded.get_text_embedding("insulin"), tiny_embedder.encode_documents("insulin"),
                               atol=1e-6)


def test_wrong_api_key_is_a_clear_error(url, monkeypatch):
    monkeypatch.delenv("O1_RETRIEVER_API_KEY", raising=False)
    wrong = O1Embedding(url=url, api_key="nope")
    assert "nope" not in repr(wrong)
    with pytest.raises(O1ServerError, match=r"HTTP 401 \(invalid_api_key\): wrong API key.*api_key="):
        wrong.get_query_embedding("which gene raises cancer risk")


def test_url_options_are_checked(url, tiny_embedder):
    with pytest.raises(ValueError, match="pass one of: an existing embedder, url"):
        O1Embedding(url=url, embedder=tiny_embedder)
    with pytest.raises(ValueError, match="pass one of: an existing embedder, url"):
        O1Embedding(url=url, model_kwargs={"device": "cpu"})
    with pytest.raises(ValueError, match="api_key is the key of an o1-retriever server: pass url too"):
        O1Embedding(api_key=KEY)  # refused before any model loads
    import chromadb
    collection = O1Embedding(url=url, api_key=KEY).chroma_collection(chromadb.EphemeralClient(), "remote-docs")
    recorded = collection.configuration_json["embedding_function"]["config"]
    assert recorded["url"].rstrip("/") == url.rstrip("/") and KEY not in str(recorded)  # the server, never the key
