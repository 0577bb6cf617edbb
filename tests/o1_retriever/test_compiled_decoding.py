"""Thinking with a static KV cache and a compiled forward writes the same thoughts as the eager path."""
import shutil

import numpy as np
import pytest

from o1_retriever import O1Embedder


@pytest.mark.slow  # a compile of the tiny model: about a minute
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile's CPU backend builds C++ kernels: needs a C compiler")
def test_compiled_decoding_writes_the_same_thoughts(tiny_o1_dir):
    queries = ["why is the sky blue", "what is a cell", "how do tides work"]
    kwargs = dict(thought_cache=False, vector_cache=False, fused=False, max_new_tokens=5, device="cpu", dtype="fp32")
    eager = O1Embedder.from_pretrained(str(tiny_o1_dir), **kwargs)
    compiled = O1Embedder.from_pretrained(str(tiny_o1_dir), compile=True, **kwargs)
    assert compiled.thinker.compiled and not eager.thinker.compiled
    want = eager.encode_queries(queries, k=2, return_thoughts=True)
    got = compiled.encode_queries(queries, k=2, return_thoughts=True)
    assert got.thoughts == want.thoughts
    np.testing.assert_allclose(got.embeddings, want.embeddings, atol=1e-5)
    again = compiled.encode_queries(queries[:2], k=2, return_thoughts=True)  # another batch shape, same answers
    assert again.thoughts == want.thoughts[:2]
