"""RemoteEmbedder against a real server on a loopback port: the same vectors and thoughts as the in-process engine,
and clear exceptions for a wrong key, an unknown model, a dead server and bad input."""
from __future__ import annotations


import numpy as np
import pytest

from o1_retriever import QueryEncoding
from o1_retriever.server import O1ServerError, RemoteEmbedder
from tests.server.fronts import Front

QUERIES = ["protein cell gene", "river ocean water", "insulin diabetes blood heart"]
DOCS = ["the heart study of patients with diabetes", "solar energy for the city", "music history of the city"]


def test_vectors_and_thoughts_equal_the_in_process_engine(server, served_embedder):
    url, _ = server
    with RemoteEmbedder(url + "/v1/") as remote:  # an OpenAI-style base URL works too
        assert (remote.fingerprint, remote.dim, remote.served_name) == (served_embedder.fingerprint,
                                                                        served_embedder.dim, "tiny")
        assert remote.name == served_embedder.name
        for k in (3, 0):
            np.testing.assert_allclose(remote.encode_queries(QUERIES, k=k),
                                       served_embedder.encode_queries(QUERIES, k=k), atol=1e-6)
        got = remote.encode_queries(QUERIES[0], k=2, return_thoughts=True)
        want = served_embedder.encode_queries(QUERIES[0], k=2, return_thoughts=True)
        assert isinstance(got, QueryEncoding) and got.embeddings.shape == (served_embedder.dim,)
        np.testing.assert_allclose(got.embeddings, want.embeddings, atol=1e-6)
        assert got.thoughts == want.thoughts and len(got.thoughts) == 2
        assert remote.think(QUERIES, k=2) == served_embedder.think(QUERIES, k=2)
        assert remote.think(QUERIES[1], k=1) == served_embedder.think(QUERIES[1], k=1)
        np.testing.assert_allclose(remote.encode_documents(DOCS), served_embedder.encode_documents(DOCS), atol=1e-6)
        assert remote.encode_documents(DOCS[0]).shape == (served_embedder.dim,)
        assert remote.encode_documents([]).shape == (0, served_embedder.dim)


def test_batch_size_is_texts_per_request(server, served_embedder, metric):
    url, _ = server
    remote = RemoteEmbedder(url)
    served = {"route": "/v1/embeddings"}  # every status
    before = metric(url, "o1_requests_total", served)
    vectors = remote.encode_documents(DOCS + QUERIES, batch_size=2)
    assert metric(url, "o1_requests_total", served) - before == 3  # 6 texts, 2 per request
    np.testing.assert_allclose(vectors, served_embedder.encode_documents(DOCS + QUERIES), atol=1e-6)


def test_wrong_or_missing_api_key_is_a_clear_401(keyed_server, api_key, monkeypatch, served_embedder):
    url, _ = keyed_server
    monkeypatch.delenv("O1_RETRIEVER_API_KEY", raising=False)
    for key, says in (("not-the-key", "wrong API key"), (None, "missing API key")):
        with pytest.raises(O1ServerError) as caught:
            RemoteEmbedder(url, api_key=key, model="tiny").encode_documents(DOCS[0])
        error = caught.value
        assert (error.status, error.code) == (401, "invalid_api_key")
        assert says in str(error) and "HTTP 401" in str(error) and url in str(error) and "api_key=" in str(error)
    np.testing.assert_allclose(RemoteEmbedder(url, api_key=api_key).encode_documents(DOCS[0]),
                               served_embedder.encode_documents(DOCS[0]), atol=1e-6)
    monkeypatch.setenv("O1_RETRIEVER_API_KEY", api_key)  # read from the same variable as the server
    assert RemoteEmbedder(url).think(QUERIES[0], k=1) == served_embedder.think(QUERIES[0], k=1)


def test_unknown_model_names_what_is_served(server):
    url, _ = server
    served = r"use one of \['tiny-query', 'tiny-document'\]"
    with pytest.raises(O1ServerError, match=r"HTTP 404 \(model_not_found\).*" + served):
        RemoteEmbedder(url, model="gpt").encode_queries("protein", k=1)


def test_a_dead_server_is_a_connection_error_naming_the_url(free_port):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    with pytest.raises(ConnectionError, match=f"cannot reach the o1-retriever server at {url}.*o1-retriever serve"):
        RemoteEmbedder(url, timeout=5).encode_documents("x")


def test_bad_arguments_fail_before_any_request(free_port):
    with pytest.raises(ValueError, match="url='localhost:8000' is not an http"):
        RemoteEmbedder("localhost:8000")
    with pytest.raises(ValueError, match="timeout must be"):
        RemoteEmbedder("http://127.0.0.1:1", timeout=0)
    remote = RemoteEmbedder(f"http://127.0.0.1:{free_port()}")  # no server: none of these may connect
    with pytest.raises(ValueError, match=r"queries\[1\] is empty"):
        remote.encode_queries(["ok", " "])
    with pytest.raises(ValueError, match="k must be >= 0"):
        remote.encode_queries("ok", k=65)
    with pytest.raises(ValueError, match="aggregation and query_weight are the served model's settings"):
        remote.encode_queries("ok", aggregation="mean")
    with pytest.raises(TypeError, match="batch_size must be a positive int"):
        remote.encode_documents(["ok"], batch_size=0.5)


def test_a_dropped_connection_is_retried_and_a_timeout_is_not(server, served_embedder):
    url, _ = server
    front = Front(url, ["drop", "drop"])
    try:
        remote = RemoteEmbedder(front.url, model="tiny")  # 2 retries by default
        np.testing.assert_allclose(remote.encode_documents(DOCS[0]), served_embedder.encode_documents(DOCS[0]),
                                   atol=1e-6)
        assert front.connections == 3
        front.plan = ["drop"]
        with pytest.raises(ConnectionError, match="cannot reach .* server at .*RemoteProtocolError"):
            RemoteEmbedder(front.url, model="tiny", retries=0).encode_documents(DOCS[0])
        # No answer in time: the server may still be working on it, so the request is not sent again.
        front.plan, front.connections = ["hang"], 0
        with pytest.raises(TimeoutError, match="did not answer /v1/embeddings within 0.5 s"):
            RemoteEmbedder(front.url, model="tiny", timeout=0.5).encode_documents(DOCS[0])
        assert front.connections == 1
    finally:
        front.close()


def test_a_server_that_never_accepts_fails_at_the_connect_timeout():
    """A host that drops connection attempts (a firewall, a wrong address) fails after connect_timeout, not after
    the long wait for an answer, and names the connection as the problem."""
    import socket
    import time
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)  # never accepts: once its queue is full,
    port = listener.getsockname()[1]                                # further attempts get no answer
    fill = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fill.append(s)
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="cannot reach .*ConnectTimeout"):
            RemoteEmbedder(f"http://127.0.0.1:{port}", model="tiny", connect_timeout=0.5, retries=0,
                           timeout=600).encode_documents("x")
        assert time.monotonic() - started < 10
    finally:
        for s in fill:
            s.close()
        listener.close()


def test_sentence_transformers_keywords_work_as_in_process(server, served_embedder):
    """RemoteEmbedder.encode_query/encode_document forwarded every keyword to encode_queries/encode_documents, so
    precision, truncate_dim, normalize_embeddings and convert_to_tensor failed as unexpected keywords."""
    import torch
    url, _ = server
    with RemoteEmbedder(url) as remote:
        for options in (dict(precision="binary"), dict(truncate_dim=8, normalize_embeddings=True),
                        dict(convert_to_tensor=True), dict(precision="int8", truncate_dim=16)):
            got = remote.encode_query(QUERIES, k=2, **options)
            want = served_embedder.encode_query(QUERIES, k=2, **options)
            assert type(got) is type(want) and got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
            np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                                       atol=1e-5 if options.get("precision") is None else 1)
            got_docs = remote.encode_document(DOCS, **options)
            assert tuple(got_docs.shape) == tuple(served_embedder.encode_document(DOCS, **options).shape)
        assert isinstance(remote.encode_query(QUERIES[0], k=1, convert_to_tensor=True), torch.Tensor)
        assert remote.similarity(remote.encode_query(QUERIES, k=1), remote.encode_document(DOCS)).shape == (3, 3)
        with pytest.raises(ValueError, match="truncate_dim"):
            remote.encode_document(DOCS, truncate_dim=remote.dim + 1)


def test_numpy_integers_for_k_and_batch_size_are_taken_as_in_process(server, served_embedder):
    """np.int64 (from an array's shape, an argmax) was refused by RemoteEmbedder and O1Embedder.think, though
    encode_queries takes it as sentence-transformers does; JSON bodies and cache keys get a plain int."""
    url, _ = server
    k, batch = np.int64(2), np.int32(2)
    with RemoteEmbedder(url) as remote:
        np.testing.assert_allclose(remote.encode_queries(QUERIES, k=k, batch_size=batch),
                                   served_embedder.encode_queries(QUERIES, k=2), atol=1e-6)
        assert remote.think(QUERIES, k=k, batch_size=batch) == served_embedder.think(QUERIES, k=2)
        assert remote.encode_documents(DOCS, batch_size=batch).shape == (3, served_embedder.dim)
    assert served_embedder.think(QUERIES, k=k, batch_size=batch) == served_embedder.think(QUERIES, k=2)
    with pytest.raises(TypeError, match="k must be an int"):
        served_embedder.think(QUERIES, k=np.bool_(True))
