"""O1Embeddings and O1Retriever with LangChain's own objects: Chroma, LCEL, async, bad input."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.prompts import PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import BaseModel, ValidationError

import langchain_o1
from langchain_o1 import O1Embeddings, O1Retriever

QUERY = "Does ALDH1 expression predict poor prognosis in breast cancer?"


@pytest.fixture
def store(scifact_store):
    return scifact_store(num_thoughts=2)


def _ids(docs):
    return [d.metadata["corpus_id"] for d in docs]


def test_public_api_is_locked():
    assert langchain_o1.__all__ == ["O1Embeddings", "O1Retriever", "__version__"]
    assert issubclass(O1Embeddings, Embeddings) and issubclass(O1Embeddings, BaseModel)
    assert issubclass(O1Retriever, BaseRetriever)


def test_embeddings_share_the_engine_and_think_on_queries(tiny_embedder, scifact_docs):
    embeddings = O1Embeddings(embedder=tiny_embedder, num_thoughts=2, batch_size=3)
    assert embeddings.embedder is tiny_embedder
    np.testing.assert_allclose(embeddings.embed_query(QUERY), tiny_embedder.encode_queries(QUERY, k=2), atol=1e-5)
    texts = [d["text"] for d in scifact_docs[:5]]
    np.testing.assert_allclose(embeddings.embed_documents(texts), tiny_embedder.encode_documents(texts), atol=1e-5)
    assert embeddings.embed_documents([]) == []
    encoding = embeddings.embed_query_with_thoughts(QUERY)
    assert encoding.thoughts == tiny_embedder.think(QUERY, k=2)


def test_embeddings_load_from_a_path(tiny_o1_dir):
    embeddings = O1Embeddings(model=str(tiny_o1_dir), num_thoughts=1, model_kwargs=dict(
        device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=4))
    assert len(embeddings.embed_query("insulin and diabetes")) == embeddings.embedder.dim == 64


def test_async_embeddings_run_off_the_event_loop(recording_embedder):
    embeddings = O1Embeddings(embedder=recording_embedder, num_thoughts=1)
    vector = asyncio.run(embeddings.aembed_query(QUERY))
    assert recording_embedder.threads[-1] is not threading.main_thread()
    np.testing.assert_allclose(vector, embeddings.embed_query(QUERY), atol=1e-5)


def test_chroma_search_and_retriever_agree_and_carry_thoughts(tiny_embedder, store):
    retriever = O1Retriever(vectorstore=store, k=3)
    assert retriever.embeddings is store.embeddings  # taken from the store: no second model
    docs = retriever.invoke(QUERY)
    assert _ids(docs) == _ids(store.similarity_search(QUERY, k=3))
    thoughts = tiny_embedder.think(QUERY, k=2)
    assert all(d.metadata["o1_thoughts"] == thoughts for d in docs)
    assert len(retriever.invoke(QUERY, k=1)) == 1 and len(retriever.invoke(QUERY)) == 3
    # num_thoughts on the retriever overrides the embeddings' own
    bare = O1Retriever(vectorstore=store, k=3, num_thoughts=0).invoke(QUERY)
    assert all(d.metadata["o1_thoughts"] == [] for d in bare)


def test_search_kwargs_reach_the_store(store):
    target = store.similarity_search(QUERY, k=5)[-1].metadata["corpus_id"]
    docs = O1Retriever(vectorstore=store, k=3, search_kwargs={"filter": {"corpus_id": target}}).invoke(QUERY)
    assert _ids(docs) == [target]


def test_ainvoke_matches_invoke_and_thinks_in_a_worker(recording_embedder, scifact_docs):
    embeddings = O1Embeddings(embedder=recording_embedder, num_thoughts=1)
    store = InMemoryVectorStore.from_texts([d["text"] for d in scifact_docs[:6]], embeddings)
    retriever = O1Retriever(vectorstore=store, k=2)
    docs = asyncio.run(retriever.ainvoke(QUERY))
    assert recording_embedder.threads[-1] is not threading.main_thread()
    assert [d.page_content for d in docs] == [d.page_content for d in retriever.invoke(QUERY)]


def test_retriever_in_an_lcel_chain(store):
    retriever = O1Retriever(vectorstore=store, k=2)
    prompt = PromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
    seen = []

    def format_docs(docs: list[Document]) -> str:
        seen.extend(docs)
        return "\n\n".join(d.page_content for d in docs)

    chain = ({"context": retriever | RunnableLambda(format_docs), "question": RunnablePassthrough()}
             | prompt | FakeListLLM(responses=["ALDH1 marks poor prognosis."]))
    assert chain.invoke(QUERY) == "ALDH1 marks poor prognosis."
    assert _ids(seen) == _ids(retriever.invoke(QUERY))


def test_bad_arguments_raise_clear_errors(tiny_embedder, store, tmp_path):
    with pytest.raises(ValidationError, match="extra"):
        O1Embeddings(embedder=tiny_embedder, colour="red")
    with pytest.raises(ValidationError, match="num_thoughts"):
        O1Embeddings(embedder=tiny_embedder, num_thoughts=-1)
    with pytest.raises(ValidationError, match="pass one of: an existing embedder"):
        O1Embeddings(embedder=tiny_embedder, model="elsewhere")
    with pytest.raises(ValidationError, match="embedder"):
        O1Embeddings(embedder="a path belongs in model")
    with pytest.raises(TypeError, match="VectorStore"):
        O1Retriever(vectorstore=store._collection)
    with pytest.raises(ValidationError, match="k must be > 0"):
        O1Retriever(vectorstore=store, k=0)
    with pytest.raises(ValidationError, match="num_thoughts must be >= 0"):
        O1Retriever(vectorstore=store, num_thoughts=-1)
    with pytest.raises(ValidationError, match="extra"):
        O1Retriever(vectorstore=store, top_k=3)
    other = Chroma(collection_name="no_embedding_function", persist_directory=str(tmp_path / "other"))
    with pytest.raises(ValidationError, match="O1Embeddings"):
        O1Retriever(vectorstore=other)
    retriever = O1Retriever(vectorstore=store, k=2)
    with pytest.raises(ValueError, match="k must be > 0"):
        retriever.invoke(QUERY, k=-1)
    with pytest.raises(ValueError, match="empty"):
        retriever.invoke("   ")
    assert len(retriever.invoke(QUERY)) == 2 and store._collection.count() == 10  # nothing lost



def test_hybrid_retriever_fuses_bm25_over_the_chroma_texts(tiny_embedder, store):
    from o1_retriever.bm25 import BM25Searcher
    from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT, fuse
    query = "breast cancer stem cells ALDH1"
    retriever = O1Retriever(vectorstore=store, k=4, hybrid=0.5)
    docs = retriever.invoke(query)
    # What fusion.fuse makes of the store's own cosine hits and BM25 over the store's own texts.
    vector = tiny_embedder.encode_queries(query, k=2)
    dense = [(d.id, -dist) for d, dist in store.similarity_search_by_vector_with_relevance_scores(vector.tolist(), 10)]
    listed = store.get(include=["documents"])
    lexical = BM25Searcher(listed["ids"], listed["documents"]).search([query], 10)[0]
    assert [d.id for d in docs] == [doc for doc, _ in fuse(dense, lexical, 0.5, 4)]
    assert all(d.metadata["o1_thoughts"] == tiny_embedder.think(query, k=2) for d in docs)
    # w=0 is BM25's ranking, which the random tiny model alone does not give; True is the shipped share.
    lexical_only = [d.id for d in O1Retriever(vectorstore=store, k=4, hybrid=0.0).invoke(query)]
    assert lexical_only == [doc for doc, _ in lexical[:4]]
    assert [d.id for d in O1Retriever(vectorstore=store, k=4).invoke(query)] != lexical_only
    assert O1Retriever(vectorstore=store, hybrid=True).hybrid == DEFAULT_DENSE_WEIGHT
    assert O1Retriever(vectorstore=store, hybrid=False).hybrid is None
    assert [d.id for d in asyncio.run(retriever.ainvoke(query))] == [d.id for d in docs]


def test_hybrid_retriever_sees_new_texts_and_keeps_filters(store):
    retriever = O1Retriever(vectorstore=store, k=1, hybrid=0.0)
    assert retriever.invoke("volcanic eruption lava")[0].page_content != "Volcanic eruption and lava flows."
    store.add_texts(["Volcanic eruption and lava flows."], metadatas=[{"corpus_id": "volcano"}])
    hit = retriever.invoke("volcanic eruption lava")[0]
    assert hit.page_content == "Volcanic eruption and lava flows." and hit.metadata["corpus_id"] == "volcano"
    # BM25's best match is filtered out, as the filter would on the dense side.
    kept = O1Retriever(vectorstore=store, k=3, hybrid=0.0,
                       search_kwargs={"filter": {"corpus_id": {"$ne": "volcano"}}}).invoke("volcanic eruption lava")
    assert kept and "volcano" not in _ids(kept)


def test_hybrid_needs_a_store_that_lists_its_texts(tiny_embedder, scifact_docs, store):
    memory = InMemoryVectorStore.from_texts([d["text"] for d in scifact_docs[:3]], O1Embeddings(embedder=tiny_embedder))
    with pytest.raises(ValidationError, match="hybrid search needs a store that lists its texts"):
        O1Retriever(vectorstore=memory, hybrid=True)

    class LookAlike:  # count/get with other meanings, as another vector store's private client might have
        def count(self, name): return 0
        def get(self, key): return None

    class ScoringStore(InMemoryVectorStore):  # scores vector hits, but its `_collection` is no chromadb collection
        _collection = LookAlike()

        def similarity_search_by_vector_with_relevance_scores(self, embedding, k=4, **kwargs):
            return self.similarity_search_with_score_by_vector(embedding, k=k)

    scoring = ScoringStore.from_texts([d["text"] for d in scifact_docs[:3]], O1Embeddings(embedder=tiny_embedder))
    with pytest.raises(ValidationError, match="hybrid search needs a store that lists its texts"):
        O1Retriever(vectorstore=scoring, hybrid=True)
    with pytest.raises(ValidationError, match=r"dense_weight must be in \[0, 1\]"):
        O1Retriever(vectorstore=store, hybrid=1.5)


# ---- LangChain conventions (issue 30) ------------------------------------------------------------------------------

def test_search_kwargs_k_means_documents_as_in_as_retriever(store):
    retriever = O1Retriever(vectorstore=store, search_kwargs={"k": 2})  # raised "multiple values for ... 'k'"
    assert len(retriever.invoke(QUERY)) == 2
    assert len(retriever.invoke(QUERY, k=3)) == 3  # the call's k wins over search_kwargs, which wins over the field
    assert len(asyncio.run(retriever.ainvoke(QUERY))) == 2
    vectorstore_style = store.as_retriever(search_kwargs={"k": 2}).invoke(QUERY)
    assert _ids(retriever.invoke(QUERY)) == _ids(vectorstore_style)  # same documents, same count
    with pytest.raises(TypeError, match="num_thoughts is a field"):
        O1Retriever(vectorstore=store, search_kwargs={"num_thoughts": 2}).invoke(QUERY)


def test_thoughts_reach_callback_handlers_and_astream_events(store):
    from langchain_core.callbacks import BaseCallbackHandler

    class Recorder(BaseCallbackHandler):
        def __init__(self):
            self.events, self.retriever_runs = [], []

        def on_retriever_start(self, serialized, query, *, run_id, **kwargs):
            self.retriever_runs.append(run_id)

        def on_custom_event(self, name, data, *, run_id, **kwargs):
            self.events.append((name, data, run_id))

    recorder = Recorder()
    docs = O1Retriever(vectorstore=store, k=2).invoke(QUERY, config={"callbacks": [recorder]})
    [(name, data, run_id)] = recorder.events  # the run_manager was ignored: no event at all
    assert name == "o1_thoughts" and run_id == recorder.retriever_runs[0]
    assert data == {"query": QUERY, "thoughts": docs[0].metadata["o1_thoughts"], "num_thoughts": 2}

    async def stream():
        return [e async for e in O1Retriever(vectorstore=store, k=2).astream_events(QUERY, version="v2")]
    custom = [e for e in asyncio.run(stream()) if e["event"] == "on_custom_event"]
    assert [e["name"] for e in custom] == ["o1_thoughts"] and custom[0]["data"]["query"] == QUERY


def test_batch_and_abatch_think_in_one_engine_call(recording_embedder, scifact_docs):
    embeddings = O1Embeddings(embedder=recording_embedder, num_thoughts=1)
    store = InMemoryVectorStore.from_texts([d["text"] for d in scifact_docs[:6]], embeddings)
    retriever = O1Retriever(vectorstore=store, k=2)
    queries = ["insulin and diabetes", "breast cancer prognosis", "vaccine immune response"]
    recording_embedder.threads.clear()
    batched = retriever.batch(queries)
    assert len(recording_embedder.threads) == 1  # one encode_queries for the whole batch
    recording_embedder.threads.clear()
    assert [[d.page_content for d in r] for r in asyncio.run(retriever.abatch(queries))] == \
        [[d.page_content for d in r] for r in batched]
    assert len(recording_embedder.threads) == 1
    one_by_one = [retriever.invoke(q) for q in queries]
    assert [[d.metadata["o1_thoughts"] for d in r] for r in one_by_one] == \
        [[d.metadata["o1_thoughts"] for d in r] for r in batched]


# ---- one collection contract with O1Index, plain Chroma and LlamaIndex ----------------------------------------------

def test_langchain_chroma_records_the_o1_model_and_plain_chroma_thinks(tiny_embedder, scifact_docs, tmp_path):
    import chromadb
    embeddings = O1Embeddings(embedder=tiny_embedder, num_thoughts=2)
    texts = [d["text"] for d in scifact_docs[:8]]
    store = Chroma.from_texts(texts, embedding=embeddings, collection_name="lc-docs", persist_directory=str(tmp_path),
                              collection_configuration=embeddings.collection_configuration())
    via_langchain = [d.page_content for d in store.similarity_search(QUERY, k=3)]
    plain = chromadb.PersistentClient(path=str(tmp_path)).get_collection("lc-docs")
    assert plain.query(query_texts=[QUERY], n_results=3)["documents"][0] == via_langchain

    from o1_retriever.index import O1Index
    assert [h.text for h in O1Index(tiny_embedder, path=tmp_path, collection="lc-docs").search(QUERY, top_k=3, k=2)] == \
        via_langchain


def test_o1index_collection_opens_in_langchain_and_a_wrong_model_is_refused(tiny_embedder, tiny_lm_dir, scifact_docs,
                                                                             tmp_path):
    from o1_retriever import O1Embedder
    from o1_retriever.index import O1Index
    index = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    index.add([d["id"] for d in scifact_docs[:8]], [d["text"] for d in scifact_docs[:8]])
    expected = [h.id for h in index.search(QUERY, top_k=3, k=2)]
    store = Chroma(collection_name="docs", persist_directory=str(tmp_path),
                   embedding_function=O1Embeddings(embedder=tiny_embedder, num_thoughts=2))
    assert [d.id for d in O1Retriever(vectorstore=store, k=3).invoke(QUERY)] == expected

    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    with pytest.raises(ValueError) as refused:
        O1Retriever(vectorstore=store, embeddings=O1Embeddings(embedder=other))
    with pytest.raises(ValueError) as by_index:
        O1Index(other, path=tmp_path, collection="docs")
    assert str(by_index.value) in str(refused.value)  # one message everywhere


# ---- search_type, as VectorStore.as_retriever takes it --------------------------------------------------------------

def test_mmr_search_type_diversifies_the_thinking_vector(tiny_embedder, store):
    retriever = O1Retriever(vectorstore=store, k=3, search_type="mmr", search_kwargs={"fetch_k": 6, "lambda_mult": 0.2})
    docs = retriever.invoke(QUERY)
    vector = tiny_embedder.encode_queries(QUERY, k=2).tolist()
    expected = store.max_marginal_relevance_search_by_vector(vector, k=3, fetch_k=6, lambda_mult=0.2)
    assert _ids(docs) == _ids(expected) and _ids(docs) != _ids(store.similarity_search_by_vector(vector, k=3))
    assert all(d.metadata["o1_thoughts"] == tiny_embedder.think(QUERY, k=2) for d in docs)
    assert _ids(asyncio.run(retriever.ainvoke(QUERY))) == _ids(docs)


def test_unknown_search_types_and_their_arguments_are_named(store):
    with pytest.raises(ValidationError, match=r"search_type='similarity_score_threshold' is not supported; "
                                              r"use one of \['similarity', 'mmr'\]"):
        O1Retriever(vectorstore=store, search_type="similarity_score_threshold")
    with pytest.raises(ValidationError, match="hybrid search fuses similarity hits"):
        O1Retriever(vectorstore=store, search_type="mmr", hybrid=True)
    # an argument of another search type: named, not chromadb's "Collection.query() got an unexpected keyword"
    # in search_kwargs: refused when the retriever is built, before any thinking; in a call's kwargs: by that call
    for key, value in (("fetch_k", 8), ("lambda_mult", 0.5), ("score_threshold", 0.5)):
        with pytest.raises(ValueError, match=rf"{key} .*search_type="):
            O1Retriever(vectorstore=store, search_kwargs={key: value})
        with pytest.raises(ValueError, match=rf"{key} .*search_type="):
            O1Retriever(vectorstore=store).invoke(QUERY, **{key: value})
    with pytest.raises(TypeError, match="k must be a positive int, got True"):
        O1Retriever(vectorstore=store, k=True)


def test_embed_documents_refuses_a_bare_string_or_none(tiny_embedder):
    embeddings = O1Embeddings(embedder=tiny_embedder, num_thoughts=1)
    with pytest.raises(TypeError, match="texts must be a list of str, got str"):
        embeddings.embed_documents("one passage")  # was: one vector per character
    with pytest.raises(TypeError, match="texts must be a list of str, got NoneType"):
        embeddings.embed_documents(None)  # was: []
    assert embeddings.embed_documents(("a passage",)) == embeddings.embed_documents(["a passage"])


def test_num_thoughts_and_batch_size_are_checked_when_built(tiny_embedder, store):
    # was: True and "3" coerced to 1 and 3, and 100 accepted until the first query failed naming the engine's `k`
    for make in (lambda n: O1Embeddings(embedder=tiny_embedder, num_thoughts=n),
                 lambda n: O1Retriever(vectorstore=store, num_thoughts=n)):
        with pytest.raises(TypeError, match="num_thoughts must be an int >= 0 .*got True"):
            make(True)
        with pytest.raises(TypeError, match="num_thoughts must be an int >= 0 .*got '3'"):
            make("3")
        with pytest.raises(ValidationError, match="num_thoughts must be >= 0 .*at most 64 .*got 100"):
            make(100)
    with pytest.raises(TypeError, match="batch_size must be a positive int, got True"):
        O1Embeddings(embedder=tiny_embedder, batch_size=True)
    assert O1Embeddings(embedder=tiny_embedder, num_thoughts=64).num_thoughts == 64


def test_a_query_that_is_not_a_str_is_named(store):
    retriever = O1Retriever(vectorstore=store, k=2)
    with pytest.raises(TypeError, match=r"query must be a str, got dict: \{'question'"):
        retriever.invoke({"question": QUERY})  # was: "unhashable type: 'dict'"
    with pytest.raises(TypeError, match="query must be a str, got list"):
        asyncio.run(retriever.ainvoke([QUERY]))


def test_one_bad_query_fails_alone_in_a_batch(recording_embedder, scifact_docs):
    store = InMemoryVectorStore.from_texts([d["text"] for d in scifact_docs[:6]],
                                           O1Embeddings(embedder=recording_embedder, num_thoughts=1))
    retriever = O1Retriever(vectorstore=store, k=2)
    queries = ["insulin and diabetes", "bad \ud800 text", "breast cancer prognosis", "   ", {"q": 1}]
    for results in (retriever.batch(queries, return_exceptions=True),
                    asyncio.run(retriever.abatch(queries, return_exceptions=True))):
        # was: the whole batch raised, naming queries[1] of its own sorted list
        assert [type(r).__name__ for r in results] == ["list", "ValueError", "list", "ValueError", "TypeError"]
        assert "lone surrogate" in str(results[1]) and "got dict" in str(results[4])
        assert [d.page_content for d in results[2]] == [d.page_content for d in retriever.invoke(queries[2])]
    recording_embedder.threads.clear()
    retriever.batch(queries[:3], return_exceptions=True)
    assert len(recording_embedder.threads) == 2  # the good queries still think in one batched call (+ the bad one)


def test_a_given_embedder_is_named_in_model_dump_and_rebuilds(tiny_embedder, tiny_o1_dir):
    """O1Embeddings(embedder=e).model_dump() said model=None, which reads (and rebuilds) as the bundled default."""
    dumped = O1Embeddings(embedder=tiny_embedder, num_thoughts=1).model_dump()
    assert dumped["model"] == str(tiny_o1_dir) and dumped["model_kwargs"]["dtype"] == "fp32"
    rebuilt = O1Embeddings(**dumped)
    assert rebuilt.embedder.fingerprint == tiny_embedder.fingerprint and rebuilt.num_thoughts == 1
    np.testing.assert_allclose(rebuilt.embed_documents(["a passage"]), O1Embeddings(
        embedder=tiny_embedder).embed_documents(["a passage"]), atol=1e-5)


def test_from_texts_and_from_documents_build_a_recording_chroma_store(tiny_embedder, scifact_docs):
    """As LangChain's BM25Retriever (and this package's LlamaIndex twin) do, the retriever builds its own store; two
    in-memory ones stay apart (Chroma's ephemeral clients share one database), and the collection records the model."""
    from o1_retriever.chroma import model_record
    embeddings = O1Embeddings(embedder=tiny_embedder, num_thoughts=1)
    docs = scifact_docs[:4]
    first = O1Retriever.from_texts([d["text"] for d in docs], embeddings, metadatas=[{"corpus_id": d["id"]} for d in docs],
                                   k=4, num_thoughts=1)
    second = O1Retriever.from_documents([Document(page_content=d["text"], metadata={"corpus_id": d["id"]}, id=d["id"])
                                         for d in scifact_docs[4:6]], embeddings, k=4)
    hits = first.invoke(QUERY)
    assert sorted(_ids(hits)) == sorted(d["id"] for d in docs) and hits[0].metadata["o1_thoughts"]
    assert sorted(d.id for d in second.invoke(QUERY)) == sorted(d["id"] for d in scifact_docs[4:6])
    assert model_record(second.vectorstore._collection) is not None
    with pytest.raises(TypeError, match="top_k"):
        O1Retriever.from_texts(["never embedded"], embeddings, top_k=3)
