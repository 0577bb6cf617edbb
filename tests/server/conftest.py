"""A real uvicorn server on a free loopback port, in a thread of the test process, serving the tiny model.

A thread (not a subprocess) lets tests compare the server's vectors with direct `encode_queries` calls on the very
same loaded embedder; the HTTP path is still real: sockets, uvicorn, the ASGI app, the lifespan and the batcher.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

from o1_retriever.server.loadtest import free_port  # noqa: E402

API_KEY = "test-key-123"


@contextmanager
def running(embedder, **options):
    """Serve `embedder` until the block ends; yields (base_url, app)."""
    from o1_retriever.server import BackgroundServer
    with BackgroundServer(embedder, **options) as server:  # port 0: the OS picks a free one
        yield server.url, server.app


@pytest.fixture(scope="session")
def serve():
    """`with serve(embedder, **create_app_options) as (url, app):` for tests that need their own server."""
    return running


@pytest.fixture(scope="session")
def served_embedder(tiny_o1_dir):
    """The tiny model with its LM head scaled x10, sampling at T=0.7: still varied thoughts, but peaked enough that
    no two candidate tokens tie to float rounding. The random tiny model's next-token distribution is nearly flat
    (top token ~4%), so a 1e-7 logit change from another batch's padding reorders near-equal tokens and flips a
    sample in about 1 query in 32: the engine's own batched `encode_queries` does the same, with or without the
    server. A trained model is peaked like this one."""
    import torch

    from o1_retriever import O1Embedder
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     max_new_tokens=8, temperature=0.7)
    with torch.no_grad():
        emb.thinker.model.lm_head.weight.mul_(10)
    return emb


@pytest.fixture(scope="module")
def server(served_embedder):
    """The tiny model served with a short wait (tests send their concurrent requests at once)."""
    with running(served_embedder, name="tiny", max_batch=64, max_wait_ms=20) as (url, app):
        yield url, app


@pytest.fixture(scope="session", name="free_port")
def free_port_fixture():
    return free_port


def metric_value(url: str, name: str, labels: dict | None = None) -> float:
    """The sum of the server's /metrics samples called `name` whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families
    return sum(s.value for family in text_string_to_metric_families(httpx.get(url + "/metrics").text)
               for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()))


@pytest.fixture(scope="session")
def metric():
    """`metric(url, name, labels)`: see metric_value."""
    return metric_value


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY


@pytest.fixture(scope="module")
def keyed_server(served_embedder):
    with running(served_embedder, name="tiny", api_key=API_KEY) as (url, app):
        yield url, app
