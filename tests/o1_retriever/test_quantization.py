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


def test_quantizing_happens_once_in_a_child_and_loads_read_the_packed_copy(tiny_o1_dir, tmp_path, monkeypatch):
    """The caller's process never reads full-precision thinker weights: a child writes the 4-bit layout to the
    cache once (the adapter merge included), and every load, the first too, reads only that."""
    import json

    import torch
    import transformers

    from o1_retriever.loading import load_causal_lm
    from o1_retriever.quantized import MARKER
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    read = []
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def recording(cls, path, *args, **kwargs):  # the real loader, with a note of what it was asked to read
        read.append(str(path))
        return real(cls, path, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(recording))
    first = load_causal_lm(str(tiny_o1_dir), device=torch.device("cpu"), dtype=torch.bfloat16, quantization="4bit")
    packed = [p for p in (tmp_path / "models").iterdir() if (p / MARKER).exists()]
    assert len(packed) == 1 and read == [str(packed[0])]  # the merge and the quantizing ran in the child
    assert json.loads((packed[0] / MARKER).read_text())["had_o1_tokens"] is True
    assert json.loads((packed[0] / "config.json").read_text())["quantization_config"]["load_in_4bit"] is True
    assert any(isinstance(m, _linear4bit()) for m in first.model.modules()) and first.prompt_style == "official"
    stamp = (packed[0] / MARKER).stat().st_mtime_ns
    again = load_causal_lm(str(tiny_o1_dir), device=torch.device("cpu"), dtype=torch.bfloat16, quantization="4bit")
    assert (packed[0] / MARKER).stat().st_mtime_ns == stamp and read == [str(packed[0])] * 2  # made once
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
