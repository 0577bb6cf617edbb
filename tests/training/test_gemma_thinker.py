"""A thinker on another architecture than Llama: Gemma 3 (the offline `google/gemma-3-270m` a user can train on).

A tiny random Gemma3ForCausalLM (sliding and global attention layers, like the real one) goes through
`o1-retriever train` with the generation loss alone, then thinks inside a composite model whose encoder is the
real all-MiniLM-L6-v2 (PyPI package)."""
from __future__ import annotations

import numpy as np
import pytest

from o1_retriever import O1Embedder
from o1_retriever.cli import main
from o1_retriever.composite import write_composite
from o1_retriever.default_model import MINILM_HUB_ID
from o1_retriever.formatting import SPECIAL_TOKENS
from tests.fixtures import build_tokenizer
from tests.training.conftest import write_triplets


@pytest.fixture(scope="module")
def tiny_gemma_dir(tmp_path_factory):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    path = tmp_path_factory.mktemp("tiny_gemma")
    tok = build_tokenizer(with_o1_tokens=False)
    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=8,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=512,
                              bos_token_id=1, eos_token_id=2, pad_token_id=2)
    Gemma3ForCausalLM(config).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def trained_composite(tiny_gemma_dir, tmp_path_factory, minilm_member):
    root = tmp_path_factory.mktemp("gemma_composite")
    data = write_triplets(root / "triplets.jsonl", n=8, n_neg=1)
    rc = main(["train", "--base-model", str(tiny_gemma_dir), "--train-data", str(data),
               "--output-dir", str(root / "thinker"), "--lambda-emb", "0", "--max-steps", "2", "--batch-size", "4",
               "--group-size", "2", "--lora-r", "4", "--lora-alpha", "8", "--token-rows-only",
               "--no-gradient-checkpointing", "--query-thought-max-length", "48", "--passage-max-length", "24"])
    assert rc == 0
    write_composite(root, "thinker", MINILM_HUB_ID, max_new_tokens=6, aggregation="mean_with_query",
                    query_weight=0.5)
    return root


def test_a_trained_gemma_thinker_thinks_in_the_official_format(trained_composite):
    emb = O1Embedder.from_pretrained(str(trained_composite), thought_cache=False, seed=0)
    assert type(emb.thinker.model).__name__ == "Gemma3ForCausalLM" and emb.thinker.prompt_style == "official"
    vocab = emb.thinker.tokenizer.get_vocab()
    assert all(token in vocab for token in SPECIAL_TOKENS)
    queries = ["heart blood pressure", "brain memory neuron"]
    out = emb.encode_queries(queries, k=2, return_thoughts=True)
    assert out.embeddings.shape == (2, 384)
    assert np.allclose(np.linalg.norm(out.embeddings, axis=1), 1, atol=1e-5)
    assert [len(t) for t in out.thoughts] == [2, 2]
    # k=0 is the encoder alone; thinking moves the vector
    bare = emb.encode_queries(queries, k=0)
    assert not np.allclose(bare, out.embeddings)
    again = O1Embedder.from_pretrained(str(trained_composite), thought_cache=False, seed=0)
    assert again.think(queries, k=2) == out.thoughts
