"""The bundled default model served over HTTP: a RemoteEmbedder gets the vectors and thoughts the in-process
engine gives, and a query lands nearer its own passage than another's."""
from __future__ import annotations

import numpy as np
import pytest

from o1_retriever.server import BackgroundServer, RemoteEmbedder

pytestmark = pytest.mark.real_model

QUERIES = ["why does bread rise?", "why is mars red?"]
DOCS = ["Yeast ferments sugar into carbon dioxide, which raises bread dough.", "Mars looks red because of iron oxide."]


def test_default_model_through_the_server_equals_in_process(default_embedder):
    with BackgroundServer(default_embedder) as server:
        remote = RemoteEmbedder(server.url)
        assert remote.served_name == "o1-retriever-default" and remote.fingerprint == default_embedder.fingerprint
        got = remote.encode_queries(QUERIES, k=1, return_thoughts=True)
        docs = remote.encode_documents(DOCS)
    want = default_embedder.encode_queries(QUERIES, k=1, return_thoughts=True)
    np.testing.assert_allclose(got.embeddings, want.embeddings, atol=1e-5)
    assert got.thoughts == want.thoughts and all(len(t) == 1 and t[0].strip() for t in got.thoughts)
    np.testing.assert_allclose(docs, default_embedder.encode_documents(DOCS), atol=1e-5)
    scores = got.embeddings @ docs.T
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]
