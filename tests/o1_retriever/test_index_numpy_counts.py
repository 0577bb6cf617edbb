"""O1Index.search takes numpy integers for its counts, as O1Embedder.encode_queries does."""
from __future__ import annotations

import pytest


def test_index_search_takes_numpy_integers_as_encode_queries_does(tiny_embedder, tmp_path):
    """top_k=np.int64(2) (from an array's length, say) was refused with a TypeError by O1Index.search, though
    encode_queries takes numpy ints; Chroma's query then gets a plain int."""
    import numpy as np

    from o1_retriever import O1Index
    index = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    index.add(["a", "b", "c"], ["the heart of patients", "solar energy", "music history"])
    hits = index.search("heart disease", top_k=np.int64(2), k=np.int32(1))
    assert [h.id for h in hits] == [h.id for h in index.search("heart disease", top_k=2, k=1)] and len(hits) == 2
    with pytest.raises(TypeError, match="top_k must be a positive int"):
        index.search("heart disease", top_k=np.bool_(True))
