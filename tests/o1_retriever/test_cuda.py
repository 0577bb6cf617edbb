"""The CUDA paths: the default device and dtype, the fused step, 4-bit thinking, the bundled default.

CI has no GPU, so every test here is skipped there; `scripts/gpu_check.sh` runs them on a GPU machine with the
CUDA benchmarks. What runs on the CPU is tested beside each feature; this file only adds what differs on a GPU
(SDPA kernels, bitsandbytes' CUDA kernels, device placement of caches and outputs).
"""
import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU = torch.device("cuda")
TEXTS = ["protein cell gene cancer vaccine virus immune", "a study", "the risk of heart disease in mice"]


def test_embedder_defaults_to_the_gpu_in_bf16_and_agrees_with_the_cpu(tiny_o1_dir):
    kw = dict(thought_cache=False, max_new_tokens=8, temperature=0.7)
    gpu = O1Embedder.from_pretrained(str(tiny_o1_dir), **kw)  # no device: CUDA when there is one
    assert gpu.encoder.model.device.type == "cuda" and gpu.encoder.model.dtype == torch.bfloat16
    docs = gpu.encode_documents(TEXTS)
    assert isinstance(docs, np.ndarray) and docs.dtype == np.float32 and docs.shape == (3, gpu.dim)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-3)
    cpu = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", **kw)
    cosine = (docs * cpu.encode_documents(TEXTS)).sum(1)
    assert cosine.min() > 0.99, cosine  # bf16 on the GPU is the same model as fp32 on the CPU
    one = gpu.encode_query(TEXTS[0], k=2)
    assert one.shape == (gpu.dim,)
    assert gpu.can_fuse
    fused = gpu.encode_queries(TEXTS, k=2, return_thoughts=True)  # vectors read from the generation's KV cache
    gpu.fused = False
    two_pass = gpu.encode_queries(TEXTS, k=2, return_thoughts=True)
    assert fused.thoughts == two_pass.thoughts
    a, b = fused.embeddings, two_pass.embeddings
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() > 0.99, cosine  # bf16: the cached step and a fresh pass round differently, nothing more


def test_4bit_thinker_runs_on_the_gpu_beside_a_full_precision_encoder(tiny_o1_dir, tmp_path, monkeypatch):
    bnb = pytest.importorskip("bitsandbytes")
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), quantization="4bit", thought_cache=False, max_new_tokens=6)
    quantized = [m for m in emb.thinker.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and all(m.weight.device.type == "cuda" for m in quantized)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in emb.encoder.model.modules())
    r = emb.encode_queries(TEXTS, k=2, return_thoughts=True)
    assert r.embeddings.shape == (3, emb.dim) and np.isfinite(r.embeddings).all()
    assert all(len(t) == 2 for t in r.thoughts)
    plain = O1Embedder.from_pretrained(str(tiny_o1_dir), thought_cache=False)
    np.testing.assert_array_equal(emb.encode_documents(TEXTS), plain.encode_documents(TEXTS))


@pytest.mark.real_model
def test_bundled_joint_model_on_the_gpu(default_embedder_gpu):
    from o1_retriever.corpus import DEMO_CORPUS, read_corpus
    emb = default_embedder_gpu
    assert emb.encoder.model.device.type == "cuda"
    passages = read_corpus(DEMO_CORPUS)
    docs = emb.encode_documents([p.full_text for p in passages])
    queries = {"Why does bread rise in the oven?": "food-1", "What makes the planet Mars look red?": "astro-2",
               "What causes ocean tides?": "astro-3"}
    for k in (0, 2):
        r = emb.encode_queries(list(queries), k=k, return_thoughts=True)
        assert [passages[i].id for i in (r.embeddings @ docs.T).argmax(1)] == list(queries.values()), r.thoughts


@pytest.fixture(scope="module")
def default_embedder_gpu():
    return O1Embedder.from_pretrained("o1-retriever-joint", thought_cache=False, max_new_tokens=32)
