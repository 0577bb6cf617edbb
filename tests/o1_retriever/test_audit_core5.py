"""Thought-cache keys that tell apart what changes the thoughts (the thinker's precision), and an OpenAI reasoning
model's refusal of the embedder's sampling parameters, against a real loopback HTTP server."""
from __future__ import annotations

import pytest
import torch

from o1_retriever import O1Embedder
from tests.fixtures import build_tiny_llama, build_tokenizer

QUERIES = ["protein cell", "river water"]


@pytest.fixture(scope="module")
def bf16_saved_dir(tmp_path_factory):
    """A tiny O1 checkpoint saved in bf16, as most hub checkpoints are: loaded in fp32 its weights are the very same
    numbers, so a fingerprint of the weights alone cannot tell the two precisions apart."""
    path = tmp_path_factory.mktemp("tiny_bf16")
    tok = build_tokenizer(with_o1_tokens=True)
    build_tiny_llama(len(tok), seed=3).to(torch.bfloat16).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _load(path, dtype, cache):
    return O1Embedder.from_pretrained(str(path), device="cpu", dtype=dtype, thought_cache=cache, vector_cache=False,
                                      max_new_tokens=6, temperature=0.7)


def test_thoughts_of_one_precision_are_not_served_to_another(bf16_saved_dir, tmp_path):
    cache = tmp_path / "t.sqlite"
    fp32 = _load(bf16_saved_dir, "fp32", cache)
    fp32.think(QUERIES, k=2)
    assert fp32.cached_fraction(QUERIES, k=2) == 1.0
    bf16 = _load(bf16_saved_dir, "bf16", cache)
    assert bf16.thinker_fingerprint == fp32.thinker_fingerprint  # the same weights...
    assert bf16.cached_fraction(QUERIES, k=2) == 0.0  # ...computing in another precision: other thoughts
    fresh = _load(bf16_saved_dir, "bf16", False).think(QUERIES, k=2)
    assert bf16.think(QUERIES, k=2) == fresh  # sampled in bf16, then kept for bf16
    assert bf16.cached_fraction(QUERIES, k=2) == 1.0 and fp32.cached_fraction(QUERIES, k=2) == 1.0


def test_a_thinker_cast_in_place_does_not_reuse_its_earlier_thoughts(bf16_saved_dir, tmp_path):
    emb = _load(bf16_saved_dir, "fp32", tmp_path / "t.sqlite")
    emb.think(QUERIES, k=2)
    emb.thinker.model.to(torch.bfloat16)  # the fingerprint was taken at construction; the key reads the dtype now
    assert emb.cached_fraction(QUERIES, k=2) == 0.0
    cast = _load(bf16_saved_dir, "fp32", False)
    cast.thinker.model.to(torch.bfloat16)
    assert emb.think(QUERIES, k=2) == cast.think(QUERIES, k=2)  # thought anew, as the cast model thinks
