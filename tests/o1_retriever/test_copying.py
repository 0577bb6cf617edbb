"""An O1Embedder copies and pickles as a SentenceTransformer does (copy.deepcopy, pickle, a multiprocessing pool's
arguments): before, its caches' locks made both fail with "cannot pickle '_thread.lock' object"."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder

QUERIES = ["why is the sky blue", "cells"]


@pytest.fixture()
def cached_embedder(tiny_o1_dir, tmp_path):
    return O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", max_new_tokens=4, seed=0,
                                      thought_cache=str(tmp_path / "thoughts.sqlite"))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_gives_the_same_vectors_and_owns_its_weights(cached_embedder, how):
    want = cached_embedder.encode_queries(QUERIES, k=2, return_thoughts=True)
    other = copy.deepcopy(cached_embedder) if how == "deepcopy" else pickle.loads(pickle.dumps(cached_embedder))
    assert other.fingerprint == cached_embedder.fingerprint
    got = other.encode_queries(QUERIES, k=2, return_thoughts=True)
    np.testing.assert_allclose(got.embeddings, want.embeddings, atol=1e-6)
    assert got.thoughts == want.thoughts
    # the copy's weights are its own, as a deep-copied SentenceTransformer's (checked on the weights themselves: the
    # original's vector and thought caches would answer its queries the same whatever its weights)
    for model in ("thinker", "encoder"):
        mine = next(getattr(cached_embedder, model).model.parameters())
        before = mine.detach().clone()
        with torch.no_grad():
            next(getattr(other, model).model.parameters()).add_(1.0)
        assert torch.equal(mine, before), model


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_reads_the_same_thought_cache_file_through_its_own_connection(cached_embedder, how):
    cached_embedder.think(QUERIES, k=2)
    other = copy.deepcopy(cached_embedder) if how == "deepcopy" else pickle.loads(pickle.dumps(cached_embedder))
    assert other.thought_cache.path == cached_embedder.thought_cache.path
    assert other.cached_fraction(QUERIES, k=2) == 1.0
    other.think(["a query only the copy thought about"], k=2)  # written by the copy ...
    assert cached_embedder.cached_fraction(["a query only the copy thought about"], k=2) == 1.0  # ... read here
    assert other.thought_cache._conn is not cached_embedder.thought_cache._conn


def test_a_copy_keeps_the_vector_cache_entries_in_a_cache_of_its_own(tiny_o1_dir):
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", max_new_tokens=4, seed=0,
                                     thought_cache=False)
    emb.encode_queries(QUERIES, k=1)
    other = copy.deepcopy(emb)
    assert len(other.vector_cache) == len(emb.vector_cache) == 2
    other.vector_cache.clear()
    assert len(emb.vector_cache) == 2
