"""A client that gives up (a timeout, a closed tab) takes its queued work with it: the engine never computes texts
nobody will read, so a retrying client cannot pile abandoned copies of its request onto a busy server."""
from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest


class Gated:
    """The served embedder, but a document batch holding "hold" blocks until released: the engine is busy for as
    long as the test needs. Records every text the engine computed."""

    def __init__(self, embedder):
        self.embedder, self.release, self.computed = embedder, threading.Event(), []

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def encode_documents(self, texts, **kw):
        self.computed += texts
        if "hold" in texts:
            assert self.release.wait(60), "the test never released the engine"
        return self.embedder.encode_documents(texts, **kw)

    def encode_queries(self, texts, *args, **kw):
        self.computed += list(texts)
        return self.embedder.encode_queries(texts, *args, **kw)

    def think(self, texts, *args, **kw):
        self.computed += list(texts)
        return self.embedder.think(texts, *args, **kw)


@pytest.mark.parametrize("route, body", [
    ("/v1/embeddings", {"input": ["abandoned"], "model": "tiny-document"}),
    ("/v1/think", {"input": ["abandoned"], "k": 1}),
])
def test_a_request_whose_client_left_is_never_computed(serve, served_embedder, metric, route, body):
    engine = Gated(served_embedder)
    with serve(engine, name="tiny", max_wait_ms=0) as (url, _):
        busy = {}
        holder = threading.Thread(target=lambda: busy.setdefault("r", httpx.post(
            url + "/v1/embeddings", json={"input": "hold", "model": "tiny-document"}, timeout=60)))
        holder.start()
        while "hold" not in engine.computed:  # the engine is now busy with "hold"
            time.sleep(0.01)
        with pytest.raises(httpx.ReadTimeout):  # queued behind "hold"; the client gives up and disconnects
            httpx.post(url + route, json=body, timeout=0.5)
        gone = {"route": route, "status": "499"}
        deadline = time.monotonic() + 10
        while metric(url, "o1_requests_total", gone) == 0:  # the server noticed the client left
            assert time.monotonic() < deadline, "the server never noticed the client had gone"
            time.sleep(0.05)
        assert httpx.get(url + "/health").json()["queue_depth"] == 0
        assert metric(url, "o1_queue_depth") == 0  # the gauge too, without waiting for another request
        engine.release.set()
        holder.join(60)
        assert busy["r"].status_code == 200
        # the server still serves, and computed nothing for the client that left
        assert httpx.post(url + "/v1/embeddings", json={"input": "after", "model": "tiny-document"}).status_code == 200
    assert engine.computed == ["hold", "after"]


def test_a_large_request_stops_at_the_next_batch_when_its_client_leaves(serve, served_embedder):
    """A request larger than --max-batch runs as several engine calls: the ones after its client left never run
    (LangChain sends up to 1000 texts per request, and retries a request that timed out)."""
    engine = Gated(served_embedder)
    with serve(engine, name="tiny", max_batch=2, max_wait_ms=0) as (url, _):
        texts = ["hold", "first", "second", "third"]
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/embeddings", json={"input": texts, "model": "tiny-document"}, timeout=0.5)
        time.sleep(0.5)  # the server notices the disconnect
        engine.release.set()
        r = httpx.post(url + "/v1/embeddings", json={"input": texts[1:], "model": "tiny-document"}, timeout=60)
        assert r.status_code == 200
        np.testing.assert_allclose([d["embedding"] for d in r.json()["data"]],
                                   served_embedder.encode_documents(texts[1:]), atol=1e-6)
    assert engine.computed == ["hold", "first"] + texts[1:]  # then only the later request's texts
