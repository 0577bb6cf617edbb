import sys

import numpy as np
import pytest

from o1_retriever import O1Embedder


def _linear4bit():
    import bitsandbytes as bnb
    return bnb.nn.Linear4bit


def test_4bit_thinker_with_full_precision_encoder(tiny_o1_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="bf16", quantization="4bit",
                                     thought_cache=False, max_new_tokens=4)
    thinker_layers = [m for m in emb.thinker.model.modules() if isinstance(m, _linear4bit())]
    encoder_layers = [m for m in emb.encoder.model.modules() if isinstance(m, _linear4bit())]
    assert thinker_layers and not encoder_layers and emb.thinker.model is not emb.encoder.model
    assert not emb.can_fuse
    r = emb.encode_queries(["protein cell", "river"], k=2, return_thoughts=True)
    assert r.embeddings.shape == (2, emb.dim) and all(len(t) == 2 for t in r.thoughts)
    # documents come from the unquantized encoder: identical to a plain bf16 load
    plain = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="bf16", thought_cache=False)
    np.testing.assert_allclose(emb.encode_documents(["protein cell"]), plain.encode_documents(["protein cell"]), atol=1e-6)


def test_share_weights_uses_one_quantized_instance(tiny_lm_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    emb = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="bf16", quantization="4bit",
                                     share_weights=True, thought_cache=False, max_new_tokens=4)
    assert emb.thinker.model is emb.encoder.model
    assert emb.thinker.prompt_style == "chat"  # the source had no O1 tokens
    assert any(isinstance(m, _linear4bit()) for m in emb.encoder.model.modules())
    assert emb.encode_queries("protein cell", k=1).shape == (emb.dim,)


def test_missing_bitsandbytes_names_the_pip_command(tiny_o1_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail
    with pytest.raises(ImportError, match="pip install bitsandbytes"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), quantization="4bit", thought_cache=False)
