"""The finished-vector cache: a repeated query runs no model forward, and nothing that changes the answer hits."""
import dataclasses
import threading
import time

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.vector_cache import QueryVectorCache


def test_lru_order_copies_and_limits(monkeypatch):
    cache = QueryVectorCache(max_entries=2)
    scope = cache.scope("fp", {"seed": 0}, 3, "mean", None)
    cache.put_many(scope, {"a": (np.ones(2), ["t"]), "b": (np.zeros(2), ["u"])})
    assert set(cache.get_many(scope, ["a"])) == {"a"}  # a is now the most recent
    cache.put_many(scope, {"c": (np.full(2, 2.0), ["v"])})
    assert set(cache.get_many(scope, ["a", "b", "c"])) == {"a", "c"}  # b, least recently used, went
    got = cache.get_many(scope, ["a"])["a"]
    got[0][:] = 7
    got[1].append("x")
    assert cache.get_many(scope, ["a"])["a"][0].tolist() == [1.0, 1.0] and cache.get_many(scope, ["a"])["a"][1] == ["t"]
    other = cache.scope("fp", {"seed": 1}, 3, "mean", None)
    assert cache.get_many(other, ["a"]) == {}
    monkeypatch.setenv("O1_RETRIEVER_VECTOR_CACHE_ENTRIES", "zero")
    with pytest.raises(ValueError, match="O1_RETRIEVER_VECTOR_CACHE_ENTRIES.*positive int, got 'zero'"):
        QueryVectorCache()


def test_concurrent_writers_and_readers_keep_the_limit():
    cache = QueryVectorCache(max_entries=50)
    scope = cache.scope("fp", {}, 1, "mean", None)
    errors = []

    def work(i):
        try:
            for j in range(200):
                cache.put_many(scope, {f"{i}-{j}": (np.full(4, j, dtype=np.float32), [str(j)])})
                for q, (v, ts) in cache.get_many(scope, [f"{i}-{j}", f"{i}-{j - 1}"]).items():
                    assert v[0] == int(q.split("-")[1]) and ts == [q.split("-")[1]]
        except Exception as e:  # surfaced below: an assertion in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and len(cache) == 50


def _forward_counter(model):
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_a_repeated_query_runs_no_forward(tiny_o1_dir):
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), thought_cache=False, max_new_tokens=3)
    first = emb.encode_queries(["why is the sky blue", "what is a cell"], k=2, return_thoughts=True)
    calls, handle = _forward_counter(emb.thinker.model)
    try:
        t = time.perf_counter()
        again = emb.encode_queries("why is the sky blue", k=2, return_thoughts=True)
        took = time.perf_counter() - t
        assert calls == [] and took < 0.05  # no thinking, no embedding: a dictionary lookup
        np.testing.assert_array_equal(again.embeddings, first.embeddings[0])
        assert again.thoughts == first.thoughts[0]
        # anything that changes the answer is another entry: k, the aggregation, the query weight, a setting
        emb.encode_queries("why is the sky blue", k=1)
        assert calls, "k=1 must think again"
        calls.clear()
        emb.encode_queries("why is the sky blue", k=2, aggregation="mean_with_query", query_weight=0.4)
        assert calls
        calls.clear()
        emb.settings = dataclasses.replace(emb.settings, temperature=0.3)
        emb.encode_queries("why is the sky blue", k=2)
        assert calls
    finally:
        handle.remove()


def test_no_vector_cache_where_a_repeat_would_sample_afresh(tiny_o1_dir):
    """seed=None without a thought cache: every call samples new thoughts, so nothing may be served twice."""
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), thought_cache=False, max_new_tokens=3, seed=None)
    emb.encode_queries("why is the sky blue", k=2)
    calls, handle = _forward_counter(emb.thinker.model)
    try:
        emb.encode_queries("why is the sky blue", k=2)
        assert calls
    finally:
        handle.remove()
    off = O1Embedder.from_pretrained(str(tiny_o1_dir), thought_cache=False, max_new_tokens=3, vector_cache=False)
    assert off.vector_cache is None
    with torch.inference_mode():
        a = off.encode_queries("q", k=1)
    np.testing.assert_array_equal(a, off.encode_queries("q", k=1))  # still repeatable: the seed is fixed


def test_long_queries_are_kept_by_digest_not_whole():
    cache = QueryVectorCache(max_entries=100)
    scope = QueryVectorCache.scope("fp", {"seed": 0}, 3, "mean", 0.5)
    queries = [f"{i} " + "long query words " * 60_000 for i in range(20)]  # about 1 MB each
    cache.put_many(scope, {q: (np.full(4, i, dtype=np.float32), [f"t{i}"]) for i, q in enumerate(queries)})
    held = sum(len(part) for key in cache._entries for part in key[1:])
    assert held < 20 * 64, f"the cache's keys hold {held} characters of query text"
    found = cache.get_many(QueryVectorCache.scope("fp", {"seed": 0}, 3, "mean", 0.5), [queries[7], queries[7] + "x"])
    assert list(found) == [queries[7]] and found[queries[7]][0][0] == 7 and found[queries[7]][1] == ["t7"]
    short = "a short query"
    cache.put_many(scope, {short: (np.zeros(4, dtype=np.float32), [])})
    assert cache.get_many(scope, [short])[short][0].shape == (4,)
