"""Issue 27, finding 1: thoughts are a pure function of (model, query, k, settings, seed).

Real threads and a real asyncio.gather over the LangChain class, on one shared tiny O1Embedder that samples at
T=0.7 (so that any change in random numbers shows up in the thoughts).
"""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder

QUERIES = ["protein cell gene", "river ocean water", "insulin diabetes blood", "the war city history",
           "solar energy plant", "music language network", "tumor mice expression", "heart brain study"]


@pytest.fixture(scope="module")
def sampler(tiny_o1_dir):
    return O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                      max_new_tokens=8, temperature=0.7)


def _run_threads(n, target):
    barrier = threading.Barrier(n)
    errors = []

    def run(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as e:  # surfaced below: a thread's failure must fail the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def test_threads_get_exactly_the_sequential_thoughts_and_vectors(sampler):
    queries = QUERIES[:6]
    want = [sampler.encode_queries(q, k=2, return_thoughts=True) for q in queries]
    got = {}
    torch.manual_seed(99)
    before = torch.get_rng_state()

    def work(i):
        for r in range(2):  # twice each: calls overlap in every order
            got[i, r] = sampler.encode_queries(queries[i], k=2, return_thoughts=True)

    _run_threads(len(queries), work)
    assert torch.equal(torch.get_rng_state(), before)  # overlapping calls restored nobody's state out of order
    for i in range(len(queries)):
        for r in range(2):
            assert got[i, r].thoughts == want[i].thoughts, QUERIES[i]
            assert np.array_equal(got[i, r].embeddings, want[i].embeddings), QUERIES[i]


def test_the_callers_random_state_is_untouched(sampler):
    torch.manual_seed(1234)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    sampler.think(QUERIES[:3], k=2)
    sampler.encode_queries(QUERIES[3], k=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(torch.rand(4), expected)


def test_global_seed_does_not_change_the_thoughts(sampler):
    torch.manual_seed(1)
    a = sampler.think(QUERIES[:2], k=2)
    torch.manual_seed(2)
    assert sampler.think(QUERIES[:2], k=2) == a


def test_a_querys_thoughts_do_not_depend_on_its_batch(sampler):
    alone = [sampler.think(q, k=2) for q in QUERIES]
    assert sampler.think(QUERIES, k=2) == alone
    assert sampler.think(list(reversed(QUERIES)), k=2, batch_size=3) == list(reversed(alone))
    # thought j of a query is the same at any k: k sweeps share their first thoughts
    assert [ts[:1] for ts in sampler.think(QUERIES, k=3)] == [sampler.think(q, k=1) for q in QUERIES]


def test_thoughts_do_not_depend_on_which_other_queries_were_cached(tiny_o1_dir, tmp_path):
    cached = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", max_new_tokens=8,
                                        temperature=0.7, thought_cache=tmp_path / "t.sqlite")
    cached.think(QUERIES[::2], k=2)  # half of them come from the cache: the rest form other batches
    fresh = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", max_new_tokens=8,
                                       temperature=0.7, thought_cache=False)
    assert cached.think(QUERIES, k=2) == fresh.think(QUERIES, k=2)


def test_seed_changes_the_sample(tiny_o1_dir):
    one, other = (O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                             max_new_tokens=8, temperature=0.7, seed=s) for s in (0, 1))
    assert one.think(QUERIES, k=2) != other.think(QUERIES, k=2)


def test_asyncio_gather_over_langchain_aembed_query(sampler):
    from langchain_o1 import O1Embeddings
    embeddings = O1Embeddings(embedder=sampler, num_thoughts=2)
    queries = QUERIES[:4]
    want = [embeddings.embed_query(q) for q in queries]

    async def main():
        return await asyncio.gather(*(embeddings.aembed_query(q) for q in queries + queries))

    got = asyncio.run(main())
    assert got == want + want


def test_langchain_retriever_batch_and_abatch_match_invoke(sampler, tmp_path, monkeypatch):
    from langchain_chroma import Chroma
    from langchain_o1 import O1Embeddings, O1Retriever
    texts = [f"{q} passage number {i}" for i, q in enumerate(QUERIES)]
    store = Chroma.from_texts(texts, embedding=O1Embeddings(embedder=sampler, num_thoughts=2),
                              collection_name="batch", persist_directory=str(tmp_path),
                              collection_metadata={"hnsw:space": "cosine"})
    retriever = O1Retriever(vectorstore=store, k=3)

    def view(docs):
        return [(d.page_content, d.metadata["o1_thoughts"]) for d in docs]

    want = [view(retriever.invoke(q)) for q in QUERIES]
    calls = []
    real = sampler.encode_queries
    monkeypatch.setattr(sampler, "encode_queries", lambda q, **kw: calls.append(q) or real(q, **kw))
    assert [view(d) for d in retriever.batch(QUERIES, config={"max_concurrency": 4})] == want
    assert [view(d) for d in asyncio.run(retriever.abatch(QUERIES))] == want
    assert calls == [sorted(QUERIES)] * 2  # each batch thought in one batched call, not one thread per query


def test_threads_sharing_a_thought_cache_store_what_one_thread_would(tiny_o1_dir, tmp_path):
    def load(cache):
        return O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", max_new_tokens=8,
                                          temperature=0.7, thought_cache=cache)

    want = load(False).think(QUERIES, k=2)
    shared = load(tmp_path / "t.sqlite")
    got = {}

    def work(i):
        got[i] = shared.think(QUERIES[i:] + QUERIES[:i], k=2)  # every thread, every query, in another order

    _run_threads(4, work)
    assert all(got[i] == want[i:] + want[:i] for i in range(4))
    assert len(shared.thought_cache) == len(QUERIES)
    assert load(tmp_path / "t.sqlite").think(QUERIES, k=2) == want  # what the cache holds is that same sample


def test_no_seed_samples_afresh_without_touching_the_global_rng(tiny_o1_dir):
    free = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                      max_new_tokens=8, temperature=0.7, seed=None)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    draws = [free.think(QUERIES[:4], k=2) for _ in range(3)]
    assert torch.equal(torch.get_rng_state(), before)
    assert draws[0] != draws[1] or draws[1] != draws[2]
