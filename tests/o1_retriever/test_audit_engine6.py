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
