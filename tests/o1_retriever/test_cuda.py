"""The CUDA paths: both backends on the GPU, the default device and dtype, 4-bit thinking, the bundled default.

CI has no GPU, so every test here is skipped there; `scripts/gpu_check.sh` runs them on a GPU machine with the
CUDA benchmarks. What runs on the CPU is tested beside each feature; this file only adds what differs on a GPU
(SDPA kernels, bitsandbytes' CUDA kernels, device placement of caches and outputs).
"""
import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.llama import LlamaForCausalLM
from o1_retriever.loading import fingerprint, load_causal_lm
from o1_retriever.sampling import generate

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU = torch.device("cuda")
TEXTS = ["protein cell gene cancer vaccine virus immune", "a study", "the risk of heart disease in mice"]


@pytest.fixture(scope="module", params=[torch.bfloat16, torch.float16, torch.float32], ids=["bf16", "fp16", "fp32"])
def pair(request, tiny_o1_dir):
    return tuple(load_causal_lm(str(tiny_o1_dir), device=GPU, dtype=request.param, backend=b)
                 for b in ("transformers", "native"))


def test_native_matches_transformers_on_the_gpu(pair):
    hf, native = pair
    assert isinstance(native.model, LlamaForCausalLM) and native.model.device.type == "cuda"
    assert fingerprint(native.model, native.tokenizer) == fingerprint(hf.model, hf.tokenizer)
    batch = hf.tokenizer(TEXTS, return_tensors="pt", padding=True).to(GPU)
    real = batch["attention_mask"].bool()
    with torch.inference_mode():
        want = hf.model.model(**batch).last_hidden_state
        got = native.model.model(**batch).last_hidden_state
    assert torch.equal(got[real], want[real]) and torch.isfinite(got).all()
    outs = []
    for lm in (hf, native):
        torch.manual_seed(0)
        with torch.inference_mode():
            outs.append(generate(lm.model, batch["input_ids"], batch["attention_mask"], n=2, temperature=0.7,
                                 top_p=0.9, max_new_tokens=10, pad_token_id=hf.tokenizer.pad_token_id,
                                 eos_token_id=hf.tokenizer.eos_token_id, return_dict_in_generate=True,
                                 use_cache=True))
    assert torch.equal(outs[0].sequences, outs[1].sequences)
    assert outs[1].sequences.device.type == "cuda"


def test_embedder_defaults_to_the_gpu_in_bf16_and_agrees_with_the_cpu(tiny_o1_dir):
    kw = dict(thought_cache=False, max_new_tokens=8, temperature=0.7)
    gpu = O1Embedder.from_pretrained(str(tiny_o1_dir), **kw)  # no device: CUDA when there is one
    assert gpu.encoder.model.device.type == "cuda" and gpu.encoder.model.dtype == torch.bfloat16
    assert gpu.backend == "native"
    docs = gpu.encode_documents(TEXTS)
    assert isinstance(docs, np.ndarray) and docs.dtype == np.float32 and docs.shape == (3, gpu.dim)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-3)
    cpu = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", **kw)
    cosine = (docs * cpu.encode_documents(TEXTS)).sum(1)
    assert cosine.min() > 0.99, cosine  # bf16 on the GPU is the same model as fp32 on the CPU
    one = gpu.encode_query(TEXTS[0], k=2)
    assert one.shape == (gpu.dim,)
    hf = O1Embedder.from_pretrained(str(tiny_o1_dir), backend="transformers", **kw)
    np.testing.assert_array_equal(hf.encode_documents(TEXTS), docs)
    np.testing.assert_array_equal(hf.encode_queries(TEXTS, k=2), gpu.encode_queries(TEXTS, k=2))  # fused


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
    assert emb.encoder.model.device.type == "cuda" and emb.backend == "native"
    passages = read_corpus(DEMO_CORPUS)
    docs = emb.encode_documents([p.full_text for p in passages])
    queries = {"Why does bread rise in the oven?": "food-1", "What makes the planet Mars look red?": "astro-2",
               "What causes ocean tides?": "astro-3"}
    for k in (0, 2):
        r = emb.encode_queries(list(queries), k=k, return_thoughts=True)
        assert [passages[i].id for i in (r.embeddings @ docs.T).argmax(1)] == list(queries.values()), r.thoughts
    hf = O1Embedder.from_pretrained("o1-retriever-joint", backend="transformers", thought_cache=False,
                                    max_new_tokens=32)
    np.testing.assert_array_equal(hf.encode_documents([p.full_text for p in passages]), docs)
    ours = emb.encode_queries(list(queries), k=2, return_thoughts=True)
    theirs = hf.encode_queries(list(queries), k=2, return_thoughts=True)
    assert ours.thoughts == theirs.thoughts
    np.testing.assert_array_equal(ours.embeddings, theirs.embeddings)


@pytest.fixture(scope="module")
def default_embedder_gpu():
    return O1Embedder.from_pretrained("o1-retriever-joint", thought_cache=False, max_new_tokens=32)  # native backend
