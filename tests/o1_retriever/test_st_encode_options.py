"""encode_query / encode_document take sentence-transformers' `precision`, `truncate_dim` and `convert_to_tensor` as
`SentenceTransformer.encode` does (cut, then normalise, then quantize with its own quantize_embeddings), refuse bad
values before any thinking, and take numpy integers for `k` and `batch_size`."""
import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder

st = pytest.importorskip("sentence_transformers")
QUERIES = ["why is the sky blue", "cells divide", "how do magnets work"]
DOCS = ["Rayleigh scattering makes the sky blue.", "Mitosis splits one cell in two.", "Spins align in iron."]


@pytest.fixture(scope="module")
def emb(tiny_o1_dir):
    return O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                      max_new_tokens=3)


class Calls:
    """Counts the calls that reach the engine's own methods (set on the instance, delegating to the real ones)."""

    def __init__(self, emb, monkeypatch):
        self.n = 0
        for name in ("encode_queries", "encode_documents"):
            real = getattr(emb, name)
            monkeypatch.setattr(emb, name, self._counted(real), raising=False)

    def _counted(self, real):
        def call(*args, **kwargs):
            self.n += 1
            return real(*args, **kwargs)
        return call


@pytest.mark.parametrize("precision, dtype, width", [("int8", np.int8, 1), ("uint8", np.uint8, 1),
                                                     ("binary", np.int8, 8), ("ubinary", np.uint8, 8)])
def test_precision_is_sentence_transformers_quantization_after_cut_and_normalise(emb, precision, dtype, width):
    raw = emb.encode_queries(QUERIES, k=1)
    out = emb.encode_query(QUERIES, k=1, precision=precision)
    assert out.dtype == dtype and out.shape == (3, emb.dim // width)
    np.testing.assert_array_equal(out, st.quantize_embeddings(raw, precision=precision))
    cut = emb.encode_query(QUERIES, k=1, precision=precision, truncate_dim=16, normalize_embeddings=True)
    unit = torch.nn.functional.normalize(torch.from_numpy(raw[:, :16].copy()), dim=1).numpy()  # as ST normalises
    np.testing.assert_array_equal(cut, st.quantize_embeddings(unit, precision=precision))
    docs = emb.encode_document(DOCS, precision=precision, convert_to_tensor=True)
    assert docs.device == torch.device("cpu") and docs.dtype == getattr(torch, np.dtype(dtype).name)
    np.testing.assert_array_equal(docs.numpy(), st.quantize_embeddings(emb.encode_documents(DOCS), precision))


@pytest.mark.parametrize("precision", ["float16", "INT8", 8, ""])
def test_a_refused_precision_names_itself_and_the_allowed_ones_before_any_work(emb, monkeypatch, precision):
    calls = Calls(emb, monkeypatch)
    for call in (emb.encode_query, emb.encode_document):
        with pytest.raises(ValueError, match=rf"precision={precision!r} is not supported; use one of "
                                             r"\['float32', 'int8', 'uint8', 'binary', 'ubinary'\]"):
            call(QUERIES, precision=precision)
    assert calls.n == 0


def test_int8_of_one_text_is_refused_before_thinking(emb, monkeypatch):
    calls = Calls(emb, monkeypatch)
    with pytest.raises(ValueError, match="precision='uint8' takes its ranges from the call's vectors"):
        emb.encode_query("why is the sky blue", k=2, precision="uint8")
    assert calls.n == 0
    assert emb.encode_query("why is the sky blue", k=1, precision="ubinary").shape == (emb.dim // 8,)
    assert emb.encode_query("why", k=0, precision=None).dtype == np.float32  # None: no quantization, as in ST


def test_truncate_dim_cuts_then_normalises_if_asked(emb):
    raw = emb.encode_queries(QUERIES, k=1)
    np.testing.assert_array_equal(emb.encode_query(QUERIES, k=1, truncate_dim=np.int64(8)), raw[:, :8])
    unit = emb.encode_query(QUERIES, k=1, truncate_dim=8, normalize_embeddings=True)
    np.testing.assert_allclose(unit, raw[:, :8] / np.linalg.norm(raw[:, :8], axis=1, keepdims=True), atol=1e-6)
    docs = emb.encode_document(DOCS, truncate_dim=8)  # unit length before the cut, not after (as in ST)
    np.testing.assert_array_equal(docs, emb.encode_documents(DOCS)[:, :8])
    assert (np.linalg.norm(docs, axis=1) < 0.999).all()
    np.testing.assert_allclose(np.linalg.norm(emb.encode_document(DOCS, truncate_dim=8, normalize_embeddings=True),
                                              axis=1), 1.0, atol=1e-6)
    assert emb.encode_query("cells", k=0, truncate_dim=emb.dim).shape == (emb.dim,)
    # the cut is the caller's: the next call's vectors (from the vector cache) keep every dimension
    assert emb.encode_queries(QUERIES, k=1).shape == (3, emb.dim)


@pytest.mark.parametrize("truncate_dim, error, match", [
    (0, ValueError, "truncate_dim=0 is out of range: the vectors have {dim} dimensions; use an int from 1 to {dim}"),
    (-4, ValueError, "truncate_dim=-4 is out of range"),
    ("dim+1", ValueError, "truncate_dim={over} is out of range"),
    (2.5, TypeError, "truncate_dim must be an int from 1 to {dim} or None, got 2.5"),
    (True, TypeError, "truncate_dim must be an int from 1 to {dim} or None, got True"),
    ("8", TypeError, "truncate_dim must be an int from 1 to {dim} or None, got '8'"),
])
def test_a_refused_truncate_dim_is_named_before_any_work(emb, monkeypatch, truncate_dim, error, match):
    over = emb.dim + 1
    truncate_dim = over if truncate_dim == "dim+1" else truncate_dim
    calls = Calls(emb, monkeypatch)
    for call in (emb.encode_query, emb.encode_document):
        with pytest.raises(error, match=match.format(dim=emb.dim, over=over)):
            call(QUERIES, truncate_dim=truncate_dim)
    assert calls.n == 0


def test_tensors_come_back_on_the_models_device(emb):
    tensor = emb.encode_query(QUERIES, k=1, convert_to_tensor=True, convert_to_numpy=True)  # tensor wins, as in ST
    assert isinstance(tensor, torch.Tensor) and tensor.device == emb.device == torch.device("cpu")
    assert tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor.numpy(), emb.encode_queries(QUERIES, k=1))
    one = emb.encode_document(DOCS[0], convert_to_tensor=True, truncate_dim=4)
    assert tuple(one.shape) == (4,)
    listed = emb.encode_document(DOCS, convert_to_numpy=False, precision="binary")
    assert isinstance(listed, list) and [tuple(t.shape) for t in listed] == [(emb.dim // 8,)] * 3
    assert all(t.dtype == torch.int8 for t in listed)


def test_numpy_integers_are_taken_for_k_and_batch_size(emb):
    plain = emb.encode_queries(QUERIES, k=1, batch_size=2)
    np.testing.assert_array_equal(emb.encode_queries(QUERIES, k=np.int64(1), batch_size=np.int32(2)), plain)
    np.testing.assert_array_equal(emb.encode_query(QUERIES, k=np.uint8(1), batch_size=np.int64(2)), plain)
    got = emb.encode_query(QUERIES, k=np.int64(1), return_thoughts=True)
    assert [len(t) for t in got.thoughts] == [1, 1, 1]
    docs = emb.encode_documents(DOCS, batch_size=1)
    np.testing.assert_array_equal(emb.encode_document(DOCS, batch_size=np.int16(1)), docs)
    for bad in (True, np.bool_(True)):
        with pytest.raises(TypeError, match="k must be an int"):
            emb.encode_query(QUERIES, k=bad)
        with pytest.raises(TypeError, match="batch_size must be a positive int"):
            emb.encode_document(DOCS, batch_size=bad)
    with pytest.raises(ValueError, match="batch_size must be > 0, got 0"):
        emb.encode_documents(DOCS, batch_size=np.int64(0))


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return minilm_dir


@pytest.fixture(scope="module")
def real(minilm, tiny_o1_dir):
    model = st.SentenceTransformer(minilm, device="cpu")
    emb = O1Embedder.composite(thinker=str(tiny_o1_dir), encoder=model, device="cpu", dtype="fp32",
                               thought_cache=False, max_new_tokens=3)
    return model, emb


@pytest.mark.parametrize("truncate_dim", [None, 128])
@pytest.mark.parametrize("precision", ["float32", "int8", "uint8", "binary", "ubinary"])
def test_k0_matches_a_real_sentence_transformer(real, precision, truncate_dim):
    model, emb = real
    for normalize in (False, True):
        options = dict(precision=precision, truncate_dim=truncate_dim, normalize_embeddings=normalize)
        for ours, theirs in [(emb.encode_query(QUERIES, k=0, **options), model.encode_query(QUERIES, **options)),
                             (emb.encode_document(DOCS, **options), model.encode_document(DOCS, **options))]:
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            if precision == "float32":
                np.testing.assert_allclose(ours, theirs, atol=1e-6)
            elif precision.endswith("binary"):
                np.testing.assert_array_equal(ours, theirs)
            else:  # the encoder re-normalises MiniLM's unit vectors in fp32 (a few 1e-8 apart), which can move a value
                # lying on a bucket's edge (each column's max does, with the ranges taken from these vectors) one bucket
                diff = np.abs(ours.astype(int) - theirs.astype(int))
                assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    tensor = emb.encode_query(QUERIES, k=0, convert_to_tensor=True, precision=precision)
    theirs = model.encode_query(QUERIES, convert_to_tensor=True, precision=precision)
    assert tensor.dtype == theirs.dtype and tensor.device == theirs.device


def test_a_model_level_truncate_dim_bounds_the_per_call_one(minilm, tiny_o1_dir):
    model = st.SentenceTransformer(minilm, device="cpu", truncate_dim=256)
    emb = O1Embedder.composite(thinker=str(tiny_o1_dir), encoder=model, device="cpu", dtype="fp32",
                               thought_cache=False, max_new_tokens=3)
    assert emb.dim == 256
    fingerprint = emb.fingerprint
    # normalised: the encoder makes its 256-d vectors unit length, where sentence-transformers leaves them cut
    cut = dict(truncate_dim=64, normalize_embeddings=True)
    np.testing.assert_allclose(emb.encode_document(DOCS, **cut), model.encode_document(DOCS, **cut), atol=1e-6)
    with pytest.raises(ValueError, match=r"truncate_dim=300 is out of range: the vectors have 256 dimensions \(the "
                                         r"encoder model's own truncate_dim=256 made them so\)"):
        emb.encode_query(QUERIES, k=0, truncate_dim=300)
    assert emb.fingerprint == fingerprint and emb.encode_queries(QUERIES, k=0).shape == (3, 256)


@pytest.mark.parametrize("precision, dtype, width", [("float32", np.float32, 1), ("int8", np.int8, 1),
                                                     ("ubinary", np.uint8, 8)])
def test_no_texts_give_no_vectors_in_the_asked_dtype_and_width(emb, precision, dtype, width):
    for call in (emb.encode_query, emb.encode_document):
        out = call([], precision=precision, truncate_dim=16)
        assert out.shape == (0, 16 // width) and out.dtype == dtype
    assert emb.encode_query([], k=1, convert_to_numpy=False, precision=precision) == []
