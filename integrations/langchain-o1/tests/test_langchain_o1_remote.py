"""O1Embeddings(url=...) against a real `o1-retriever serve` app on a loopback port (uvicorn in a thread of this
process, serving the tiny model): the same vectors and thoughts as the in-process engine, queries and documents
routed to their own model ids, a clear error for a wrong key."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
prometheus = pytest.importorskip("prometheus_client.parser")

from langchain_chroma import Chroma  # noqa: E402

from langchain_o1 import O1Embeddings, O1Retriever  # noqa: E402
from o1_retriever.server import BackgroundServer, O1ServerError  # noqa: E402

KEY = "langchain-test-key"


@pytest.fixture(scope="module")
def url(tiny_embedder):
    with BackgroundServer(tiny_embedder, name="tiny", api_key=KEY) as server:
        yield server.url


def _inputs(url) -> dict:
    import httpx
    text = httpx.get(url + "/metrics").text
    return {s.labels["kind"]: s.value for family in prometheus.text_string_to_metric_families(text)
            for s in family.samples if s.name == "o1_inputs_total"}


def test_url_embeddings_equal_in_process_and_route_by_model_id(url, tiny_embedder, scifact_docs, scifact_queries):
    remote = O1Embeddings(url=url, api_key=KEY, num_thoughts=2)
    local = O1Embeddings(embedder=tiny_embedder, num_thoughts=2)
    texts = [d["text"] for d in scifact_docs[:4]]
    before = _inputs(url)
    query = remote.embed_query(scifact_queries[0])
    assert _inputs(url).get("query", 0) - before.get("query", 0) == 1  # sent to tiny-query: it thought
    docs = remote.embed_documents(texts)
    assert _inputs(url).get("document", 0) - before.get("document", 0) == len(texts)  # to tiny-document
    np.testing.assert_allclose(query, local.embed_query(scifact_queries[0]), atol=1e-6)
    np.testing.assert_allclose(docs, local.embed_documents(texts), atol=1e-6)
    assert not np.allclose(query, remote.embed_documents([scifact_queries[0]])[0], atol=1e-4)
    with_thoughts = remote.embed_query_with_thoughts(scifact_queries[1])
    assert with_thoughts.thoughts == tiny_embedder.think(scifact_queries[1], k=2)
    assert remote.embed_documents([]) == []
    assert isinstance(query, list) and isinstance(docs[0], list) and isinstance(query[0], float)


async def test_async_url_embeddings(url, tiny_embedder, scifact_queries):
    remote = O1Embeddings(url=url + "/v1", api_key=KEY, model="tiny", num_thoughts=1)
    np.testing.assert_allclose(await remote.aembed_query(scifact_queries[0]),
                               tiny_embedder.encode_queries(scifact_queries[0], k=1), atol=1e-6)


def test_retriever_searches_a_locally_built_store_through_the_server(url, tiny_embedder, scifact_docs,
                                                                      scifact_queries, tmp_path):
    local = O1Embeddings(embedder=tiny_embedder, num_thoughts=2)
    store = Chroma.from_texts([d["text"] for d in scifact_docs[:8]], embedding=local,
                              collection_name=f"c{uuid.uuid4().hex[:8]}", persist_directory=str(tmp_path),
                              collection_configuration=local.collection_configuration())
    # The collection records the model; the server's has the same fingerprint, so the check lets it search.
    remote = O1Retriever(vectorstore=store, embeddings=O1Embeddings(url=url, api_key=KEY, num_thoughts=2), k=3)
    here = O1Retriever(vectorstore=store, k=3)
    got, want = remote.invoke(scifact_queries[0]), here.invoke(scifact_queries[0])
    assert [d.page_content for d in got] == [d.page_content for d in want] and len(got) == 3
    assert got[0].metadata["o1_thoughts"] == want[0].metadata["o1_thoughts"]


def test_wrong_api_key_is_a_clear_error_and_the_key_stays_secret(url, monkeypatch):
    monkeypatch.delenv("O1_RETRIEVER_API_KEY", raising=False)
    wrong = O1Embeddings(url=url, api_key="nope", num_thoughts=1)
    assert "nope" not in repr(wrong) and KEY not in repr(O1Embeddings(url=url, api_key=KEY))
    with pytest.raises(O1ServerError, match=r"HTTP 401 \(invalid_api_key\): wrong API key.*api_key="):
        wrong.embed_query("which gene raises cancer risk")
    with pytest.raises(O1ServerError, match="missing API key"):
        O1Embeddings(url=url).embed_documents(["insulin"])


def test_url_options_are_checked(url, free_port_for_langchain):
    with pytest.raises(ValueError, match="model_kwargs load a local model"):
        O1Embeddings(url=url, model_kwargs={"device": "cpu"})
    with pytest.raises(ValueError, match="api_key is the key of an o1-retriever server: pass url too"):
        O1Embeddings(api_key=KEY)  # refused before any model loads
    with pytest.raises(ConnectionError, match="cannot reach the o1-retriever server"):
        O1Embeddings(url=f"http://127.0.0.1:{free_port_for_langchain}", timeout=5)
    recorded = O1Embeddings(url=url, api_key=KEY).collection_configuration()["embedding_function"].get_config()
    assert recorded["url"].rstrip("/") == url.rstrip("/") and KEY not in str(recorded)  # the server, never the key


@pytest.fixture
def free_port_for_langchain() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
