"""Dynamic batching: concurrent requests share engine calls, and nobody's vector depends on who shared its batch."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from o1_retriever import O1Embedder

WORDS = "protein cell gene river ocean water insulin diabetes blood heart brain study music language city".split()
QUERIES = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(2 + i % 4)) + f" {i}" for i in range(32)]


def test_32_concurrent_clients_get_the_sequential_vectors_in_shared_batches(server, served_embedder, metric):
    import httpx
    url, _ = server
    want = [served_embedder.encode_queries(q, k=3, return_thoughts=True) for q in QUERIES]  # one at a time
    calls_before = metric(url, "o1_batch_size_count", {"kind": "query"})
    barrier = threading.Barrier(len(QUERIES))

    def client(q):
        with httpx.Client(timeout=120) as c:
            barrier.wait()  # all 32 at once
            r = c.post(url + "/v1/embeddings", json={"input": q, "model": "tiny-query", "return_thoughts": True})
            assert r.status_code == 200, r.text
            return r.json()["data"][0]

    with ThreadPoolExecutor(len(QUERIES)) as pool:
        got = list(pool.map(client, QUERIES))
    for g, w in zip(got, want):
        assert g["thoughts"] == w.thoughts
        np.testing.assert_allclose(g["embedding"], w.embeddings, atol=1e-5)
    calls = metric(url, "o1_batch_size_count", {"kind": "query"}) - calls_before
    assert 1 <= calls < len(QUERIES), f"{calls} engine calls for {len(QUERIES)} concurrent requests: nothing merged"
    assert metric(url, "o1_batch_size_bucket", {"kind": "query", "le": "1.0"}) < metric(
        url, "o1_batch_size_count", {"kind": "query"}), "no engine call held more than one text"
    assert metric(url, "o1_requests_total", {"route": "/v1/embeddings", "status": "200"}) >= len(QUERIES)


class _Recorder:
    """A stand-in engine that records each call, to test the queue's merging rules without a model."""
    thought_cache = None

    class encoder:  # noqa: N801 - attribute stand-in
        tokenizer = None
        model = None

    def __init__(self):
        self.calls = []

    def encode_documents(self, texts, **_):
        self.calls.append(("document", 0, list(texts)))
        return np.zeros((len(texts), 2), np.float32)

    def encode_queries(self, texts, k, **_):
        from o1_retriever.embedder import QueryEncoding
        self.calls.append(("query", k, list(texts)))
        return QueryEncoding(np.full((len(texts), 2), k, np.float32), [[t] * k for t in texts])

    def think(self, texts, k, **_):
        self.calls.append(("think", k, list(texts)))
        return [[t] * k for t in texts]


def test_batcher_merges_only_same_kind_and_k_within_max_batch():
    from o1_retriever.server.batching import Batcher
    engine = _Recorder()

    async def main():
        batcher = Batcher(engine, max_batch=4, max_wait_ms=50)
        await batcher.start()
        jobs = [("query", ["a"], 3), ("query", ["b", "c"], 3), ("document", ["d"], 0), ("query", ["e"], 0),
                ("query", ["f", "g"], 3), ("think", ["h"], 2), ("query", ["i"], 3)]
        results = await asyncio.gather(*(batcher.submit(kind, texts, k) for kind, texts, k in jobs))
        await batcher.stop()
        return jobs, results

    jobs, results = asyncio.run(main())
    for (kind, texts, k), r in zip(jobs, results):  # each request gets exactly its own rows back
        if kind != "document":
            assert r.thoughts == [[t] * k for t in texts]
        if kind == "query":
            assert r.embeddings.shape == (len(texts), 2) and (r.embeddings == k).all()
    # Oldest first; same kind and k merge up to 4 texts; other kinds and k keep their place in the queue.
    # "f g" would overflow the first batch and waits for the next; the smaller "i" behind it still fits.
    assert engine.calls == [("query", 3, ["a", "b", "c", "i"]), ("document", 0, ["d"]), ("query", 0, ["e"]),
                            ("query", 3, ["f", "g"]), ("think", 2, ["h"])]


def test_batcher_engine_error_fails_that_batch_only():
    from o1_retriever.server.batching import Batcher

    class Failing(_Recorder):
        def encode_documents(self, texts, **_):
            raise RuntimeError("out of memory")

    async def main():
        batcher = Batcher(Failing(), max_batch=8, max_wait_ms=0)
        await batcher.start()
        with pytest.raises(RuntimeError, match="out of memory"):
            await batcher.submit("document", ["x"])
        ok = await batcher.submit("query", ["y"], 1)
        await batcher.stop()
        return ok

    assert asyncio.run(main()).thoughts == [["y"]]


def test_cache_hit_rate_in_metrics(serve, tiny_o1_dir, tmp_path, metric):
    import httpx
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", max_new_tokens=8,
                                     thought_cache=tmp_path / "thoughts.sqlite")
    with serve(emb, name="tiny") as (url, _):
        for _ in range(2):  # a miss, then a hit
            assert httpx.post(url + "/v1/embeddings", json={"input": "protein cell", "model": "tiny-query"},
                              timeout=60).status_code == 200
        assert metric(url, "o1_thought_cache_lookups_total") == 2
        assert metric(url, "o1_thought_cache_hits_total") == 1
        assert metric(url, "o1_thought_cache_hit_ratio") == pytest.approx(0.5)
