"""O1Retriever's settings after construction, and its search arguments: checked before any thinking, with the value
and what is allowed named, and a refused value never left in place."""
from __future__ import annotations

import asyncio

import pytest
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ValidationError

from langchain_o1 import O1Embeddings, O1Retriever
from langchain_o1.store_search import SEARCH_TYPES

QUERY = "Does ALDH1 expression predict poor prognosis in breast cancer?"


@pytest.fixture
def store(scifact_store):
    return scifact_store(num_thoughts=1)


@pytest.mark.parametrize("name, value, error", [
    ("k", "x", "k must be a positive int, got 'x'"),
    ("k", -1, "k must be > 0, got -1"),
    ("num_thoughts", -3, "num_thoughts must be >= 0"),
    ("search_type", "bogus", r"search_type='bogus' is not supported; use one of \['similarity', 'mmr'\]"),
    ("hybrid", 3.0, r"dense_weight must be in \[0, 1\]"),
    ("search_kwargs", {"k": -1}, "k must be > 0, got -1"),
    ("search_kwargs", {"colour": 1}, r"search argument\(s\) \['colour'\] are not taken by "
                                     r"Chroma.similarity_search_by_vector; it takes \[.*'filter'"),
    ("search_kwargs", {"filter": {"$bogus": 1}}, r"filter=\{'\$bogus': 1\} is not a Chroma where filter"),
    ("search_kwargs", {"where_document": {"$bogus": "x"}}, "where_document=.* is not a Chroma where_document filter"),
    ("search_kwargs", {"fetch_k": 3}, "fetch_k is an argument of search_type='mmr'"),
])
def test_a_bad_assignment_is_refused_and_undone(store, name, value, error):
    """Each of these was accepted, and the next search failed after thinking (chromadb's "unexpected keyword
    argument 'colour'", "Invalid where clause", AttributeError for hybrid) or silently ignored it (search_type)."""
    retriever = O1Retriever(vectorstore=store, k=2)
    before = retriever.model_dump()
    with pytest.raises((TypeError, ValueError), match=error):
        setattr(retriever, name, value)
    assert retriever.model_dump() == before  # pydantic leaves a value its model validators refused in place
    assert len(retriever.invoke(QUERY)) == 2


def test_good_assignments_take_effect(store):
    retriever = O1Retriever(vectorstore=store, k=2)
    retriever.k = 3
    assert len(retriever.invoke(QUERY)) == 3
    target = retriever.invoke(QUERY)[-1].metadata["corpus_id"]
    retriever.search_kwargs = {"filter": {"corpus_id": target}}
    assert [d.metadata["corpus_id"] for d in retriever.invoke(QUERY)] == [target]
    retriever.search_kwargs = {}
    retriever.hybrid = 0.0  # BM25 is set up when hybrid is switched on after construction (was: AttributeError)
    assert len(retriever.invoke("breast cancer stem cells")) == 3
    bm25 = retriever._bm25
    retriever.k = 2  # the BM25 built so far is kept
    assert retriever._bm25 is bm25 and len(retriever.invoke("breast cancer stem cells")) == 2
    retriever.hybrid = None
    retriever.search_type, retriever.search_kwargs = "mmr", {"fetch_k": 5, "lambda_mult": 0.3}
    assert len(retriever.invoke(QUERY)) == 2


def test_search_arguments_are_checked_when_built_and_per_call(store):
    for kwargs, error in (({"colour": 1}, r"\['colour'\] are not taken"),
                          ({"filter": {"$bogus": 1}}, "is not a Chroma where filter"),
                          ({"filter": {"a": 1, "b": 2}}, "is not a Chroma where filter"),  # Chroma wants $and
                          ({"where": {"corpus_id": "x"}}, r"\['where'\] are not taken")):  # LangChain's name: filter
        with pytest.raises(ValidationError, match=error):
            O1Retriever(vectorstore=store, search_kwargs=kwargs)
        with pytest.raises(ValueError, match=error):
            O1Retriever(vectorstore=store).invoke(QUERY, **kwargs)
        with pytest.raises(ValueError, match=error):
            asyncio.run(O1Retriever(vectorstore=store).ainvoke(QUERY, **kwargs))
    mmr = dict(vectorstore=store, search_type="mmr")
    with pytest.raises(ValidationError, match="lambda_mult must be a number in \\[0, 1\\].*got 2"):
        O1Retriever(**mmr, search_kwargs={"lambda_mult": 2})
    with pytest.raises(ValidationError, match="fetch_k must be > 0, got 0"):
        O1Retriever(**mmr, search_kwargs={"fetch_k": 0})
    for search_type in SEARCH_TYPES:  # langchain_chroma reads the result it asks for: include=["documents"] broke it
        with pytest.raises(ValidationError, match=r"\['include'\] are not taken"):
            O1Retriever(vectorstore=store, search_type=search_type, search_kwargs={"include": ["documents"]})
    two = store.get()["ids"][:2]  # Collection.query's own arguments reach it
    assert sorted(d.id for d in O1Retriever(vectorstore=store, k=5, search_kwargs={"ids": two}).invoke(QUERY)) == \
        sorted(two)
    with pytest.raises(ValidationError, match=r"\['ids'\] are not taken by hybrid search; it takes "
                                              r"\['filter', 'k', 'where_document'\]"):
        O1Retriever(vectorstore=store, hybrid=0.5, search_kwargs={"ids": ["1"]})  # BM25 would not apply it


def test_a_store_that_passes_arguments_on_takes_any(tiny_embedder, scifact_docs):
    """InMemoryVectorStore's search takes **kwargs without saying what they are: nothing is refused for it."""
    store = InMemoryVectorStore.from_texts([d["text"] for d in scifact_docs[:4]],
                                           O1Embeddings(embedder=tiny_embedder, num_thoughts=0))
    first = store.similarity_search("x", k=4)[0].page_content
    retriever = O1Retriever(vectorstore=store, k=3, search_kwargs={"filter": lambda d: d.page_content == first})
    assert [d.page_content for d in retriever.invoke(QUERY)] == [first]


def test_embeddings_settings_are_checked_on_assignment_and_the_engine_is_fixed(tiny_embedder, tiny_o1_dir):
    """num_thoughts=-1 was accepted and failed at the next query naming the engine's `k`; model='elsewhere' was
    accepted and recorded by model_dump() while the old model kept embedding."""
    embeddings = O1Embeddings(embedder=tiny_embedder, num_thoughts=1)
    for name, value, error in (("num_thoughts", -1, "num_thoughts must be >= 0"),
                               ("num_thoughts", "2", "num_thoughts must be an int >= 0 .*got '2'"),
                               ("batch_size", 0, "batch_size must be > 0, got 0"),
                               ("show_progress", "maybe", "show_progress")):
        with pytest.raises((TypeError, ValueError), match=error):
            setattr(embeddings, name, value)
    for name, value in (("model", "elsewhere"), ("model_kwargs", {"dtype": "bf16"}), ("url", "http://x"),
                        ("timeout", 5.0), ("embedder", tiny_embedder)):
        with pytest.raises(AttributeError, match=f"{name} is fixed once the model is loaded"):
            setattr(embeddings, name, value)
    assert embeddings.model_dump()["model"] == str(tiny_o1_dir) and embeddings.num_thoughts == 1
    embeddings.num_thoughts = 2
    assert embeddings.embed_query_with_thoughts(QUERY).thoughts == tiny_embedder.think(QUERY, k=2)
    assert O1Embeddings(**embeddings.model_dump()).num_thoughts == 2


def test_from_documents_keeps_each_documents_id_as_chroma_does(tiny_embedder, scifact_docs):
    """One document without an id made every other document lose its own (all got random ones); and ids=... was
    refused ("got multiple values for keyword argument 'ids'"), which VectorStore.from_documents takes."""
    embeddings = O1Embeddings(embedder=tiny_embedder, num_thoughts=0)
    documents = [Document(page_content=d["text"], id=d["id"] if i else None) for i, d in enumerate(scifact_docs[:3])]
    stored = set(O1Retriever.from_documents(documents, embeddings).vectorstore.get()["ids"])
    assert {scifact_docs[1]["id"], scifact_docs[2]["id"]} < stored and len(stored) == 3
    named = O1Retriever.from_documents(documents, embeddings, ids=["a", "b", "c"], k=3)
    assert sorted(d.id for d in named.invoke(QUERY)) == ["a", "b", "c"]


def test_from_texts_checks_every_setting_before_embedding(tiny_embedder, scifact_docs, tmp_path):
    """k=0 or hybrid=2 was refused only after every text was embedded and written (a persistent collection kept
    them); now nothing is embedded. No texts make an empty retriever, filled later through its store."""
    embeddings = O1Embeddings(embedder=tiny_embedder, num_thoughts=0)
    texts = [d["text"] for d in scifact_docs[:4]]
    for settings, error in (({"k": 0}, "k must be > 0"), ({"hybrid": 2}, r"dense_weight must be in \[0, 1\]"),
                            ({"search_kwargs": {"filter": {"$bogus": 1}}}, "is not a Chroma where filter")):
        with pytest.raises(ValidationError, match=error):
            O1Retriever.from_texts(texts, embeddings, persist_directory=str(tmp_path), **settings)
        assert Chroma(persist_directory=str(tmp_path), collection_name="o1_retriever")._collection.count() == 0
    empty = O1Retriever.from_texts([], embeddings, k=2)
    assert empty.invoke(QUERY) == []
    empty.vectorstore.add_texts(texts)
    assert len(empty.invoke(QUERY)) == 2


def test_a_store_assigned_later_brings_its_own_embeddings(tiny_embedder, store, scifact_docs, tmp_path):
    """retriever.vectorstore = other kept the first store's O1Embeddings (here 1 thought, where the new store's
    embed with 2); embeddings given explicitly stay."""
    two = O1Embeddings(embedder=tiny_embedder, num_thoughts=2)
    other = Chroma.from_texts([d["text"] for d in scifact_docs[10:14]], embedding=two, collection_name="other",
                              persist_directory=str(tmp_path / "other"))
    retriever = O1Retriever(vectorstore=store, k=2)
    retriever.vectorstore = other
    assert retriever.embeddings is two
    assert len(retriever.invoke(QUERY)[0].metadata["o1_thoughts"]) == 2
    given = O1Retriever(vectorstore=store, embeddings=store.embeddings, k=2)
    given.vectorstore = other
    assert given.embeddings is store.embeddings
    with pytest.raises(ValueError, match="InMemoryVectorStore does not embed with O1Embeddings"):
        retriever.vectorstore = InMemoryVectorStore(embedding=DeterministicFakeEmbedding(size=8))
    assert retriever.vectorstore is other and retriever.embeddings is two
