"""Exact search and the on-disk corpus-embedding cache (tiny real model, real files)."""
import numpy as np
import pytest

from o1_retriever.evaluation.search import corpus_cache_path, corpus_embeddings, exact_search


def test_exact_search_matches_full_sort():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 8)).astype(np.float32)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    ids = [f"d{i}" for i in range(50)]
    results = exact_search(queries, docs, ids, top_k=7)
    for q, hits in zip(queries, results):
        scores = docs @ q
        assert [d for d, _ in hits] == [ids[i] for i in np.argsort(-scores)[:7]]
        assert [s for _, s in hits] == pytest.approx(sorted(scores, reverse=True)[:7], rel=1e-5)
    assert len(exact_search(queries, docs, ids, top_k=500)[0]) == 50
    with pytest.raises(ValueError, match="same width"):
        exact_search(queries, docs[:, :4], ids)


def test_corpus_cache_is_reused_and_keyed_by_texts(tiny_embedder, tmp_path):
    ids, texts = ["a", "b", "c"], ["blood sugar", "immune system", "solar energy"]
    first, cached = corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path)
    assert not cached and first.shape == (3, tiny_embedder.dim)
    again, cached = corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path)
    assert cached and np.array_equal(first, again)
    np.testing.assert_allclose(first, tiny_embedder.encode_documents(texts), atol=1e-5)
    other = corpus_cache_path(tiny_embedder, ids, ["blood sugar", "immune system", "wind energy"], tmp_path)
    assert other != corpus_cache_path(tiny_embedder, ids, texts, tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npy"]  # no temporary files left behind


def test_corrupt_cache_file_is_recomputed(tiny_embedder, tmp_path):
    ids, texts = ["a", "b"], ["blood sugar", "immune system"]
    corpus_cache_path(tiny_embedder, ids, texts, tmp_path).write_bytes(b"not a numpy file")
    vectors, cached = corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path)
    assert not cached and vectors.shape == (2, tiny_embedder.dim)
    assert corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path)[1]


def test_a_failed_run_resumes_at_its_last_finished_chunk(tiny_embedder, tmp_path):
    ids = [f"d{i}" for i in range(10)]
    texts = [f"document number {i} about blood sugar" for i in range(10)]
    whole = tiny_embedder.encode_documents(texts)
    calls, fail_at = [], [3]

    def failing(part, batch_size):  # the first run dies on its third chunk, as a killed run would
        calls.append(list(part))
        if len(calls) in fail_at:
            raise RuntimeError("killed")
        return tiny_embedder.encode_documents(part, batch_size=batch_size)

    with pytest.raises(RuntimeError, match="killed"):
        corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path, encode=failing, chunk_size=3)
    parts = corpus_cache_path(tiny_embedder, ids, texts, tmp_path).with_suffix(".parts")
    assert sorted(p.name for p in parts.iterdir()) == ["000000000.npy", "000000003.npy"]
    (parts / "000000003.npy").write_bytes(b"")  # a half-written chunk is embedded again, not trusted
    calls.clear()
    fail_at.clear()
    vectors, cached = corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path, encode=failing, chunk_size=3)
    assert not cached and calls == [texts[3:6], texts[6:9], texts[9:]]
    np.testing.assert_allclose(vectors, whole, atol=1e-5)
    assert not parts.exists() and [p.suffix for p in tmp_path.iterdir()] == [".npy"]
