"""Real clients against a real server: the `openai` package and LangChain's OpenAIEmbeddings. The server's vectors
must equal direct calls on the same loaded embedder (the server adds transport, not numerics)."""
from __future__ import annotations

import numpy as np
import pytest

QUERIES = ["protein cell gene", "river ocean water", "insulin diabetes blood"]
DOCS = ["the heart study of patients with diabetes", "solar energy for the city"]


def test_openai_client_embeds_queries_and_documents_like_direct_calls(server, served_embedder):
    openai = pytest.importorskip("openai")
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")  # the server has no key: any value passes
    assert {m.id for m in client.models.list()} == {"tiny-query", "tiny-document"}
    assert client.models.retrieve("tiny-document").id == "tiny-document"
    with pytest.raises(openai.NotFoundError, match="is not served here"):
        client.models.retrieve("text-embedding-3-small")
    # The client asks for base64 by default and decodes it: this checks the byte layout too.
    got = client.embeddings.create(model="tiny-query", input=QUERIES)
    assert got.model == "tiny-query" and [d.index for d in got.data] == [0, 1, 2]
    assert got.usage.prompt_tokens > 0
    want = served_embedder.encode_queries(QUERIES, k=3)
    np.testing.assert_allclose(np.array([d.embedding for d in got.data]), want, atol=1e-5)
    as_floats = client.embeddings.create(model="tiny-query", input=QUERIES[0], encoding_format="float")
    np.testing.assert_allclose(as_floats.data[0].embedding, want[0], atol=1e-5)
    # Clients that write every field send null for the ones they leave out: OpenAI reads them as the defaults.
    import httpx
    nulls = httpx.post(url + "/v1/embeddings", timeout=60, json={"model": "tiny-query", "input": QUERIES[0],
                                                                  "encoding_format": None, "dimensions": None,
                                                                  "user": None})
    assert nulls.status_code == 200, nulls.text
    np.testing.assert_allclose(nulls.json()["data"][0]["embedding"], want[0], atol=1e-5)

    docs = client.embeddings.create(model="tiny-document", input=DOCS)
    np.testing.assert_allclose(np.array([d.embedding for d in docs.data]), served_embedder.encode_documents(DOCS),
                               atol=1e-5)
    # errors raise the exceptions code written for OpenAI catches
    with pytest.raises(openai.BadRequestError, match="is empty"):
        client.embeddings.create(model="tiny-document", input="")
    with pytest.raises(openai.NotFoundError, match="is not served here"):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    # a base_url without /v1 (Infinity's layout) reaches the same endpoint
    bare = openai.OpenAI(base_url=url, api_key="unused").embeddings.create(model="tiny-document", input=DOCS[0])
    np.testing.assert_allclose(bare.data[0].embedding, docs.data[0].embedding, atol=1e-6)


def test_openai_client_extra_fields_k_and_input_type(server, served_embedder):
    openai = pytest.importorskip("openai")
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    bare = client.embeddings.create(model="tiny-query", input=QUERIES[:2], extra_body={"k": 0})
    np.testing.assert_allclose([d.embedding for d in bare.data], served_embedder.encode_queries(QUERIES[:2], k=0),
                               atol=1e-5)
    # The bare name plus input_type, for clients that keep one model id and send a flag.
    doc = client.embeddings.create(model="tiny", input=DOCS[0], extra_body={"input_type": "document"})
    np.testing.assert_allclose(doc.data[0].embedding, served_embedder.encode_documents(DOCS[0]), atol=1e-5)


def test_think_endpoint_returns_the_thoughts_behind_the_vectors(server, served_embedder):
    import httpx
    url, _ = server
    r = httpx.post(url + "/v1/think", json={"input": QUERIES, "k": 2}, timeout=60)
    assert r.status_code == 200, r.text
    assert [d["thoughts"] for d in r.json()["data"]] == served_embedder.think(QUERIES, k=2)
    r = httpx.post(url + "/v1/embeddings", json={"input": QUERIES[0], "model": "tiny-query", "return_thoughts": True},
                   timeout=60)
    assert r.json()["data"][0]["thoughts"] == served_embedder.think(QUERIES[0], k=3)


def test_langchain_openai_embeddings(server, served_embedder):
    lc = pytest.importorskip("langchain_openai")
    url, _ = server
    # check_embedding_ctx_length=False: send text, not tiktoken ids (the server refuses token ids with a 400).
    docs = lc.OpenAIEmbeddings(base_url=url + "/v1", model="tiny-document", api_key="unused",
                               check_embedding_ctx_length=False)
    queries = lc.OpenAIEmbeddings(base_url=url + "/v1", model="tiny-query", api_key="unused",
                                  check_embedding_ctx_length=False)
    np.testing.assert_allclose(docs.embed_documents(DOCS), served_embedder.encode_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose(queries.embed_query(QUERIES[0]), served_embedder.encode_queries(QUERIES[0], k=3),
                               atol=1e-5)


def test_health_and_models(server, served_embedder):
    import httpx
    url, _ = server
    assert httpx.head(url + "/health").status_code == 200
    health = httpx.get(url + "/health").json()
    assert health["model_loaded"] is True and health["fingerprint"] == served_embedder.fingerprint
    assert (health["device"], health["dtype"], health["dim"]) == ("cpu", "float32", served_embedder.dim)
    assert health["model_ids"] == ["tiny-query", "tiny-document"]
