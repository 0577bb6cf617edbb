"""RemoteEmbedder.encode_query/encode_document with sentence-transformers' keywords ask the server only for the
vectors: the model's width (GET /health) is needed only to check a `truncate_dim`, so a call without one costs no
extra round trip where the served name is given (real server on a loopback port, counted by its own /metrics)."""
from __future__ import annotations

import pytest

from o1_retriever.server import RemoteEmbedder

QUERIES = ["protein cell gene", "river ocean water"]
DOCS = ["the heart study of patients with diabetes", "solar energy for the city"]


def _health(metric, url) -> float:
    return metric(url, "o1_requests_total", {"route": "/health"})


def test_no_health_request_without_truncate_dim(server, metric):
    url, _ = server
    before = _health(metric, url)
    with RemoteEmbedder(url, model="tiny") as remote:  # the served name given: nothing else to ask
        remote.encode_query(QUERIES, k=1, normalize_embeddings=True, convert_to_tensor=True)
        remote.encode_document(DOCS, precision="binary")
        assert _health(metric, url) == before
        assert remote.encode_query(QUERIES, k=1, truncate_dim=4).shape == (2, 4)  # this one needs the width
        assert _health(metric, url) == before + 1
        with pytest.raises(ValueError, match="truncate_dim"):
            remote.encode_document(DOCS, truncate_dim=remote.dim + 1)
