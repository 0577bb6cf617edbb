"""Audit of the engine against sentence-transformers' `encode` / `encode_query` / `encode_document` conventions:
shapes, input kinds, keywords, order and determinism, on tiny random models."""
import numpy as np
import pytest
import torch

from tests.fixtures import tiny_composite


@pytest.fixture(scope="module")
def composite(tmp_path_factory, tiny_o1_dir):
    """The tiny thinker with one tiny random sentence-transformers encoder (the composite path)."""
    return tiny_composite(tmp_path_factory.mktemp("engine6"), tiny_o1_dir)


@pytest.fixture(params=["lm", "composite"])
def any_emb(request, tiny_embedder):
    return tiny_embedder if request.param == "lm" else request.getfixturevalue("composite")


def test_no_texts_give_an_empty_batch_of_the_model_dimension(any_emb):
    """sentence-transformers answers an empty list with no vectors, not an error; the shape keeps the dimension so
    the result stacks with others."""
    dim = any_emb.dim
    for vectors in (any_emb.encode_documents([]), any_emb.encode_document([]), any_emb.encode_queries([], k=0),
                    any_emb.encode_query([], k=0), any_emb.encode_query([], k=2)):
        assert isinstance(vectors, np.ndarray) and vectors.shape == (0, dim) and vectors.dtype == np.float32
    tensor = any_emb.encode_document([], convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tuple(tensor.shape) == (0, dim)
    assert any_emb.encode_query([], k=0, convert_to_numpy=False) == []
    with_thoughts = any_emb.encode_queries([], k=0, return_thoughts=True)
    assert with_thoughts.embeddings.shape == (0, dim) and with_thoughts.thoughts == []


def test_a_numpy_array_of_texts_is_a_batch_as_in_sentence_transformers(tiny_embedder):
    """sentence-transformers encodes a 1-D array of str (a pandas column's `.values`) as a batch; a 0-d one is one
    text. Other shapes and unordered or one-shot inputs are refused with what to pass."""
    texts = ["why is the sky blue", "cells divide", "why is the sky blue"]
    as_list = tiny_embedder.encode_documents(texts)
    np.testing.assert_array_equal(tiny_embedder.encode_documents(np.array(texts)), as_list)
    np.testing.assert_array_equal(tiny_embedder.encode_document(np.array(texts, dtype=object)), as_list)
    np.testing.assert_array_equal(tiny_embedder.encode_query(np.array(texts), k=1),
                                  tiny_embedder.encode_query(texts, k=1))
    assert tiny_embedder.encode_documents(np.array(texts[0])).shape == (tiny_embedder.dim,)
    with pytest.raises(TypeError, match=r"documents must be a 1-D array of str, got an array of shape \(1, 3\)"):
        tiny_embedder.encode_documents(np.array([texts]))
    with pytest.raises(TypeError, match=r"documents\[1\] must be a str, got NoneType"):
        tiny_embedder.encode_documents(np.array(["a", None], dtype=object))
    for unordered in ((t for t in texts), set(texts)):
        with pytest.raises(TypeError, match="pass a list or tuple: the vectors come back in its order"):
            tiny_embedder.encode_query(unordered, k=1)


def test_sentence_transformers_defaults_passed_explicitly_are_accepted(tiny_embedder):
    """Code written for a SentenceTransformer (or a wrapper forwarding every keyword) passes prompt_name=None,
    device=None, output_value="sentence_embedding", truncate_dim=None, precision=None...: those ask for nothing
    beyond what is done, so they are taken; any other value is still refused by name."""
    defaults = dict(prompt_name=None, prompt=None, device=None, output_value="sentence_embedding", truncate_dim=None,
                    chunk_size=None, pool=None, precision=None)
    np.testing.assert_array_equal(tiny_embedder.encode_query(["cells", "why"], k=1, **defaults),
                                  tiny_embedder.encode_query(["cells", "why"], k=1))
    np.testing.assert_array_equal(tiny_embedder.encode_document("a passage", **defaults),
                                  tiny_embedder.encode_document("a passage"))
    for name, value in [("output_value", "token_embeddings"), ("output_value", None),
                        ("device", "cpu"), ("prompt", "")]:
        with pytest.raises(TypeError, match=f"encode_document\\(\\) got {name}={value!r}"):
            tiny_embedder.encode_document("a passage", **{name: value})


def test_a_repeated_query_gets_its_own_thoughts_list(tiny_o1_dir):
    """Output order equals input order, duplicates included; each position's thoughts are a list of its own, so
    editing one (appending, sorting) does not change the duplicate's, with or without the vector cache."""
    from o1_retriever import O1Embedder
    for vector_cache in (True, False):
        emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                         max_new_tokens=4, vector_cache=vector_cache)
        queries = ["why is the sky blue", "cells", "why is the sky blue"]
        out = emb.encode_queries(queries, k=2, return_thoughts=True)
        alone = [emb.encode_queries(q, k=2, return_thoughts=True) for q in queries]
        np.testing.assert_allclose(out.embeddings, np.stack([a.embeddings for a in alone]), atol=1e-6)
        assert out.thoughts == [a.thoughts for a in alone] and out.thoughts[0] == out.thoughts[2]
        out.thoughts[0].append("edited")
        assert out.thoughts[2] == alone[2].thoughts, f"vector_cache={vector_cache}"


def test_a_refused_precision_is_refused_before_any_thinking(tiny_o1_dir):
    """A bad keyword costs nothing: the query is neither thought about nor embedded (nothing enters the vector
    cache) before the error."""
    from o1_retriever import O1Embedder
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     max_new_tokens=4)
    with pytest.raises(ValueError, match="precision='int4' is not supported; use one of"):
        emb.encode_query(["why is the sky blue", "cells"], k=2, precision="int4")
    with pytest.raises(ValueError, match="precision='float16' is not supported; use one of"):
        emb.encode_document(["a passage"], precision="float16")
    assert len(emb.vector_cache) == 0


def test_an_infinite_temperature_is_refused():
    """temperature=inf passed the `>= 0` check: thoughts were drawn uniformly and the recorded settings were no
    longer valid JSON (a Chroma config, an eval JSON's meta)."""
    from o1_retriever.settings import InferenceSettings, check_overrides
    for value in (float("inf"), np.float64("inf")):
        with pytest.raises(ValueError, match="temperature must be finite .*got .*inf"):
            InferenceSettings(temperature=value)
        with pytest.raises(ValueError, match="temperature must be finite"):
            check_overrides({"temperature": value})
    with pytest.raises(ValueError, match="temperature must be >= 0, got -1"):
        InferenceSettings(temperature=-1)
    assert InferenceSettings(temperature=100.0).temperature == 100.0


def test_threads_batches_and_repeats_give_the_serial_vectors(any_emb):
    """Several threads calling encode_query / encode_document on one model, a query alone or inside any batch, and
    the same call twice all give the serial result (thoughts are seeded per query, batches pad without leaking)."""
    from concurrent.futures import ThreadPoolExecutor
    any_emb.vector_cache.clear()  # computed, not looked up
    queries = [f"question {i} about {'cells' if i % 2 else 'the sky'}" + " and more" * i for i in range(6)]
    serial = [any_emb.encode_queries(q, k=2, return_thoughts=True) for q in queries]
    any_emb.vector_cache.clear()
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda q: any_emb.encode_query(q, k=2, return_thoughts=True), queries * 2))
        docs = list(pool.map(any_emb.encode_document, queries * 2))
    for i, out in enumerate(threaded):
        np.testing.assert_allclose(out.embeddings, serial[i % 6].embeddings, atol=1e-6)
        assert out.thoughts == serial[i % 6].thoughts
    any_emb.vector_cache.clear()
    batched = any_emb.encode_queries(queries[::-1], k=2, batch_size=4, return_thoughts=True)
    np.testing.assert_allclose(batched.embeddings, np.stack([s.embeddings for s in serial[::-1]]), atol=1e-6)
    assert batched.thoughts == [s.thoughts for s in serial[::-1]]
    np.testing.assert_allclose(np.stack(docs), np.concatenate([any_emb.encode_documents(queries, batch_size=4)] * 2),
                               atol=1e-6)


def test_input_kinds(tiny_embedder):
    """One str gives 1-D, a list or tuple 2-D; items that are not str are refused with their index and type."""
    assert tiny_embedder.encode_document("a passage").shape == (tiny_embedder.dim,)
    assert tiny_embedder.encode_query(np.str_("cells"), k=1).shape == (tiny_embedder.dim,)
    assert tiny_embedder.encode_document(("a passage", "another")).shape == (2, tiny_embedder.dim)
    for bad, kind in [(None, "NoneType"), (b"bytes", "bytes"), (3, "int"), (np.int64(3), "int64")]:
        with pytest.raises(TypeError, match=rf"documents\[1\] must be a str, got {kind}"):
            tiny_embedder.encode_document(["a passage", bad])


def test_an_empty_aggregation_name_is_refused_not_replaced_by_the_default(tiny_embedder):
    for value in ("", 0, False):
        with pytest.raises(ValueError, match=rf"aggregation={value!r} is not supported; use one of"):
            tiny_embedder.encode_queries("cells", k=1, aggregation=value)
    np.testing.assert_array_equal(tiny_embedder.encode_queries("cells", k=1, aggregation=None),
                                  tiny_embedder.encode_queries("cells", k=1))
