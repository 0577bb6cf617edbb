"""O1Retriever as a LlamaIndex BaseRetriever: Chroma and other stores, query engine, async, bad input."""
from __future__ import annotations

import asyncio
import threading

import chromadb
import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import get_response_synthesizer
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.vector_stores.chroma import ChromaVectorStore

import llama_index.retrievers.o1 as package
from llama_index.embeddings.o1 import O1Embedding
from llama_index.retrievers.o1 import O1Retriever

QUERY = "Does ALDH1 expression predict poor prognosis in breast cancer?"


@pytest.fixture
def documents(scifact_docs):
    # the id stays out of the embedded text, so brute force over the bare texts is comparable
    return [Document(text=d["text"], metadata={"corpus_id": d["id"]}, excluded_embed_metadata_keys=["corpus_id"])
            for d in scifact_docs[:12]]


@pytest.fixture
def retriever(tiny_embedder, documents):
    return O1Retriever.from_documents(documents, embedder=tiny_embedder, similarity_top_k=3, k=2)


def _ids(hits):
    return [h.node.metadata["corpus_id"] for h in hits]


def test_public_api_is_locked():
    assert package.__all__ == ["O1Retriever"]
    assert issubclass(O1Retriever, BaseRetriever)


def test_from_documents_ranks_like_brute_force_and_carries_thoughts(tiny_embedder, retriever, documents):
    hits = retriever.retrieve(QUERY)
    query_vector = tiny_embedder.encode_queries(QUERY, k=2)
    cosines = tiny_embedder.encode_documents([d.text for d in documents]) @ query_vector / np.linalg.norm(query_vector)
    assert _ids(hits) == [documents[i].metadata["corpus_id"] for i in np.argsort(-cosines)[:3]]
    np.testing.assert_allclose([h.score for h in hits], np.sort(cosines)[::-1][:3], atol=3e-3)
    thoughts = tiny_embedder.think(QUERY, k=2)
    assert retriever.last_thoughts == thoughts
    for hit in hits:
        assert hit.node.metadata["o1_thoughts"] == thoughts
        assert hit.node.get_content() in [d.text for d in documents]
        assert "o1_thoughts" in hit.node.excluded_llm_metadata_keys  # never shown to the LLM
    assert retriever.embedder is tiny_embedder


def test_existing_chroma_store_and_plain_chroma_agree(tiny_embedder, documents, tmp_path):
    built = O1Retriever.from_documents(documents, embedder=tiny_embedder, similarity_top_k=3, k=2,
                                       persist_dir=str(tmp_path))
    expected = _ids(built.retrieve(QUERY))
    # a new client on the same directory: the collection is found and searched as any Chroma store
    collection = chromadb.PersistentClient(path=str(tmp_path)).get_collection("o1_retriever")
    reopened = O1Retriever(vector_store=ChromaVectorStore(chroma_collection=collection), embedder=tiny_embedder,
                           similarity_top_k=3, k=2)
    assert _ids(reopened.retrieve(QUERY)) == expected
    # the collection carries the O1 function, so plain Chroma text queries think the same way
    plain = collection.query(query_texts=[QUERY], n_results=3, include=["metadatas"])
    assert [m["corpus_id"] for m in plain["metadatas"][0]] == expected


def test_any_vector_store_through_an_index(tiny_embedder, documents):
    embed_model = O1Embedding(embedder=tiny_embedder, k=2)
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)  # SimpleVectorStore
    retriever = O1Retriever.from_index(index, similarity_top_k=3, k=2)
    assert retriever.embedder is tiny_embedder
    hits = retriever.retrieve(QUERY)
    assert _ids(hits) == _ids(index.as_retriever(similarity_top_k=3).retrieve(QUERY))
    # the docstore's own nodes are not touched by the thoughts we attach
    stored = index.docstore.get_node(hits[0].node.node_id)
    assert "o1_thoughts" not in stored.metadata
    with pytest.raises(ValueError, match="docstore"):
        O1Retriever(vector_store=index.vector_store, embedder=tiny_embedder)


def test_query_engine_with_mock_llm(retriever):
    engine = RetrieverQueryEngine(retriever=retriever,
                                  response_synthesizer=get_response_synthesizer(llm=MockLLM(), response_mode="compact"))
    response = engine.query(QUERY)
    assert _ids(response.source_nodes) == _ids(retriever.retrieve(QUERY))
    # MockLLM echoes its prompt: the retrieved passages reach the LLM, the thoughts do not
    assert response.source_nodes[0].node.get_content()[:80] in str(response)
    assert all(t[:40] not in str(response) for t in retriever.last_thoughts if len(t) > 20)


def test_aretrieve_matches_and_thinks_off_the_event_loop(recording_embedder, documents):
    retriever = O1Retriever.from_documents(documents, embedder=recording_embedder, similarity_top_k=2, k=1)
    hits = asyncio.run(retriever.aretrieve(QUERY))
    assert recording_embedder.threads[-1] is not threading.main_thread()
    assert _ids(hits) == _ids(retriever.retrieve(QUERY))
    assert recording_embedder.threads[-1] is threading.main_thread()


class _ThreadRecordingChroma(ChromaVectorStore):
    """A real Chroma store that notes which thread runs its (synchronous) query."""
    def query(self, query, **kwargs):
        QUERY_THREADS.append(threading.current_thread())
        return super().query(query, **kwargs)


QUERY_THREADS: list = []


def test_aretrieve_queries_a_synchronous_store_off_the_event_loop(tiny_embedder, documents, tmp_path):
    O1Retriever.from_documents(documents, embedder=tiny_embedder, k=1, persist_dir=str(tmp_path))
    collection = chromadb.PersistentClient(path=str(tmp_path)).get_collection("o1_retriever")
    retriever = O1Retriever(vector_store=_ThreadRecordingChroma(chroma_collection=collection), embedder=tiny_embedder,
                            similarity_top_k=2, k=1)
    QUERY_THREADS.clear()
    hits = asyncio.run(retriever.aretrieve(QUERY))
    assert QUERY_THREADS and QUERY_THREADS[-1] is not threading.main_thread()  # ChromaVectorStore has no own aquery
    assert _ids(hits) == _ids(retriever.retrieve(QUERY)) and QUERY_THREADS[-1] is threading.main_thread()


def test_k_zero_searches_with_the_bare_query(tiny_embedder, documents):
    retriever = O1Retriever.from_documents(documents, embedder=tiny_embedder, similarity_top_k=2, k=0)
    hits = retriever.retrieve(QUERY)
    assert len(hits) == 2 and retriever.last_thoughts == []
    assert all(h.node.metadata["o1_thoughts"] == [] for h in hits)


def test_bad_arguments_raise_clear_errors(tiny_embedder, retriever, documents, tmp_path):
    collection = chromadb.PersistentClient(path=str(tmp_path)).get_or_create_collection("raw")
    with pytest.raises(TypeError, match="ChromaVectorStore"):
        O1Retriever(vector_store=collection, embedder=tiny_embedder)
    store = ChromaVectorStore(chroma_collection=collection)
    with pytest.raises(ValueError, match="num_thoughts must be >= 0"):
        O1Retriever(vector_store=store, embedder=tiny_embedder, k=-1)
    with pytest.raises(ValueError, match="similarity_top_k"):
        O1Retriever(vector_store=store, embedder=tiny_embedder, similarity_top_k=0)
    with pytest.raises(TypeError, match="embedder must be"):
        O1Retriever(vector_store=store, embedder=42)
    with pytest.raises(ValueError, match="num_thoughts must be >= 0"):
        O1Retriever.from_documents(documents, embedder=tiny_embedder, k=-2)
    with pytest.raises(TypeError, match="VectorStoreIndex"):
        O1Retriever.from_index(store)
    with pytest.raises(TypeError, match=r"filters must be a llama_index MetadataFilters .*got dict"):
        O1Retriever(vector_store=store, embedder=tiny_embedder, filters={"corpus_id": "1"})  # was: at retrieve time
    with pytest.raises(ValueError, match="empty"):
        retriever.retrieve("   ")
    assert len(retriever.retrieve(QUERY)) == 3  # still works after the failed call


def test_loads_a_model_from_a_path_with_options(tiny_o1_dir, tiny_embedder, documents):
    built = O1Retriever.from_documents(documents, embedder=tiny_embedder, similarity_top_k=2, k=1)
    retriever = O1Retriever(built.vector_store, str(tiny_o1_dir), similarity_top_k=2, k=1, model_kwargs=dict(
        device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=8))
    assert retriever.embedder is not tiny_embedder and retriever.embedder.fingerprint == tiny_embedder.fingerprint
    assert _ids(retriever.retrieve(QUERY)) == _ids(built.retrieve(QUERY))
    with pytest.raises(ValueError, match="model_kwargs"):
        O1Retriever(built.vector_store, tiny_embedder, model_kwargs={"dtype": "fp32"})


def test_hybrid_with_bm25_through_query_fusion(tiny_embedder, documents):
    """The README's hybrid recipe with real LlamaIndex parts: QueryFusionRetriever's dist_based_score mode is a
    z-score fusion like o1_retriever.fusion; thoughts must stay off the nodes so the same passage merges."""
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.retrievers.fusion_retriever import FUSION_MODES
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.retrievers.bm25 import BM25Retriever

    nodes = SentenceSplitter(chunk_size=1024).get_nodes_from_documents(documents)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=len(nodes))

    def fused(weights, attach_thoughts=False, top=3):
        dense = O1Retriever.from_documents(documents, embedder=tiny_embedder, similarity_top_k=len(nodes), k=1,
                                           transformations=[SentenceSplitter(chunk_size=1024)],
                                           attach_thoughts=attach_thoughts)
        fusion = QueryFusionRetriever([dense, bm25], mode=FUSION_MODES.DIST_BASED_SCORE, num_queries=1,
                                      similarity_top_k=top, retriever_weights=weights, llm=MockLLM(), use_async=False)
        return dense, fusion.retrieve(QUERY)

    dense, hits = fused([0.5, 0.5])
    assert len(hits) == 3 and len(set(_ids(hits))) == 3  # each passage once: the two lists merged
    assert "o1_thoughts" not in hits[0].node.metadata and dense.last_thoughts  # thoughts still on the retriever
    assert _ids(fused([0.0, 1.0])[1])[0] == _ids(bm25.retrieve(QUERY))[0]
    assert _ids(fused([1.0, 0.0])[1])[0] == _ids(dense.retrieve(QUERY))[0]
    # Both lists hold every passage: merged, that is one hit each. With thoughts attached the same passage hashes
    # differently in each list, so nothing merges and every passage comes back twice.
    assert len(fused([0.5, 0.5], top=100)[1]) == len(nodes)
    assert len(fused([0.5, 0.5], attach_thoughts=True, top=100)[1]) == 2 * len(nodes)


def test_attach_thoughts_must_be_a_bool(tiny_embedder, documents):
    with pytest.raises(TypeError, match="attach_thoughts must be True or False"):
        O1Retriever.from_documents(documents[:2], embedder=tiny_embedder, attach_thoughts="no")


def test_native_hybrid_fuses_bm25_over_the_chroma_texts(tiny_embedder, documents):
    from o1_retriever.bm25 import BM25Searcher
    from o1_retriever.fusion import fuse
    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
    query = "breast cancer stem cells ALDH1"
    hybrid = O1Retriever.from_documents(documents, embedder=tiny_embedder, similarity_top_k=4, k=1, hybrid=0.5)
    hits = hybrid.retrieve(query)
    # What fusion.fuse makes of the store's own hits and BM25 over the collection's own texts.
    collection = hybrid.vector_store._collection
    dense = O1Retriever(hybrid.vector_store, tiny_embedder, similarity_top_k=100, k=1).retrieve(query)
    listed = collection.get(include=["documents"])
    lexical = BM25Searcher(listed["ids"], listed["documents"]).search([query], 100)[0]
    expected = fuse([(h.node.node_id, h.score) for h in dense], lexical, 0.5, 4)
    assert [(h.node.node_id, h.score) for h in hits] == [(d, pytest.approx(s)) for d, s in expected]
    assert all(h.node.metadata["o1_thoughts"] == hybrid.last_thoughts for h in hits) and hybrid.last_thoughts
    assert all(h.node.get_content() in [d.text for d in documents] for h in hits)
    # w=0: BM25's best first (not what the random tiny model finds alone); async agrees; filters hold on both sides.
    lexical_first = O1Retriever(hybrid.vector_store, tiny_embedder, similarity_top_k=1, k=0, hybrid=0.0)
    assert lexical_first.retrieve(query)[0].node.node_id == lexical[0][0]
    assert O1Retriever(hybrid.vector_store, tiny_embedder, similarity_top_k=1, k=0).retrieve(query)[0].node.node_id \
        != lexical[0][0]
    assert [h.node.node_id for h in asyncio.run(hybrid.aretrieve(query))] == [h.node.node_id for h in hits]
    best = next(n for n in dense if n.node.node_id == lexical[0][0]).node.metadata["corpus_id"]
    others = MetadataFilters(filters=[MetadataFilter(key="corpus_id", value=best, operator="!=")])
    kept = O1Retriever(hybrid.vector_store, tiny_embedder, similarity_top_k=3, k=0, hybrid=0.0,
                       filters=others).retrieve(query)
    assert kept and best not in _ids(kept)


def test_native_hybrid_needs_a_chroma_store(tiny_embedder, documents):
    index = VectorStoreIndex.from_documents(documents[:3], embed_model=O1Embedding(embedder=tiny_embedder, k=0))
    with pytest.raises(ValueError, match="hybrid search needs a store that lists its texts"):
        O1Retriever.from_index(index, hybrid=True)
    with pytest.raises(ValueError, match=r"dense_weight must be in \[0, 1\]"):
        O1Retriever.from_documents(documents[:2], embedder=tiny_embedder, hybrid=2)


# ---- LlamaIndex conventions (issue 30): the framework's events fire, HyDE's strings are honoured --------------------

class _Recorder:
    """A real instrumentation handler on the root dispatcher, and a real callback handler."""

    def __init__(self):
        from llama_index.core.instrumentation import get_dispatcher
        from llama_index.core.instrumentation.event_handlers import BaseEventHandler

        events = self.events = []

        class Handler(BaseEventHandler):
            @classmethod
            def class_name(cls) -> str:
                return "Recorder"

            def handle(self, event, **kwargs):
                events.append(event)

        self.handler, self.root = Handler(), get_dispatcher()
        self.root.add_event_handler(self.handler)

    def close(self):
        self.root.event_handlers.remove(self.handler)

    def of(self, name):
        return [e for e in self.events if e.class_name() == name]


def test_retrieve_fires_embedding_events_with_the_thoughts(retriever):
    from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
    debug = LlamaDebugHandler()
    retriever.callback_manager = CallbackManager([debug])
    recorder = _Recorder()
    try:
        hits = retriever.retrieve(QUERY)
    finally:
        recorder.close()
    thoughts = hits[0].node.metadata["o1_thoughts"]
    assert len(thoughts) == 2 and thoughts == retriever.last_thoughts
    # instrumentation: the pair LlamaIndex fires for a query embedding, with an O1ThoughtsEvent inside
    names = [e.class_name() for e in recorder.events if e.class_name().startswith(("Embedding", "O1"))]
    assert names == ["EmbeddingStartEvent", "O1ThoughtsEvent", "EmbeddingEndEvent"]  # was: none at all
    [thought_event] = recorder.of("O1ThoughtsEvent")
    assert (thought_event.query, thought_event.thoughts, thought_event.num_thoughts) == (QUERY, thoughts, 2)
    assert recorder.of("EmbeddingEndEvent")[0].chunks == [QUERY]
    # the legacy callback system: one EMBEDDING event, its end payload carrying the thoughts
    [(start, end)] = debug.get_event_pairs(CBEventType.EMBEDDING)
    assert end.payload["o1_thoughts"] == [thoughts]


def test_hyde_custom_embedding_strs_are_embedded(tiny_embedder, retriever):
    from llama_index.core.schema import QueryBundle
    hypothetical = "ALDH1 positive tumours had worse survival in breast cancer patients."
    bundle = QueryBundle(query_str=QUERY, custom_embedding_strs=[hypothetical, QUERY])
    embedding, thoughts = retriever._embed(bundle)
    expected = tiny_embedder.encode_queries([hypothetical, QUERY], k=2).mean(axis=0)
    np.testing.assert_allclose(embedding, expected, atol=1e-5)  # was: the query string alone
    assert len(thoughts) == 4
    with_hyde = retriever.retrieve(bundle)
    by_vector = retriever.retrieve(QueryBundle(query_str=QUERY, embedding=expected.tolist()))
    assert [h.node.node_id for h in with_hyde] == [h.node.node_id for h in by_vector]


def test_query_embedding_of_o1embedding_reports_its_thoughts(tiny_embedder):
    recorder = _Recorder()
    try:
        O1Embedding(embedder=tiny_embedder, k=2).get_query_embedding(QUERY)
    finally:
        recorder.close()
    names = [e.class_name() for e in recorder.events if e.class_name().startswith(("Embedding", "O1"))]
    assert names == ["EmbeddingStartEvent", "O1ThoughtsEvent", "EmbeddingEndEvent"]
    assert recorder.of("O1ThoughtsEvent")[0].thoughts == tiny_embedder.think(QUERY, k=2)


# ---- one collection contract with O1Index and plain Chroma ---------------------------------------------------------

def test_o1index_collection_opens_in_llamaindex_and_a_wrong_model_is_refused(tiny_embedder, tiny_lm_dir, documents,
                                                                             tmp_path):
    from o1_retriever import O1Embedder
    from o1_retriever.index import O1Index
    index = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    index.add([d.metadata["corpus_id"] for d in documents], [d.text for d in documents])
    expected = [h.text for h in index.search(QUERY, top_k=3, k=2)]
    store = ChromaVectorStore(chroma_collection=chromadb.PersistentClient(path=str(tmp_path)).get_collection("docs"))
    hits = O1Retriever(store, tiny_embedder, similarity_top_k=3, k=2).retrieve(QUERY)
    assert [h.node.get_content() for h in hits] == expected
    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    with pytest.raises(ValueError) as refused:
        O1Retriever(store, other)
    with pytest.raises(ValueError) as by_index:
        O1Index(other, path=tmp_path, collection="docs")
    assert str(refused.value) == str(by_index.value)


def test_from_documents_collection_opens_in_o1index(tiny_embedder, documents, tmp_path):
    from o1_retriever.index import O1Index
    retriever = O1Retriever.from_documents(documents, embedder=tiny_embedder, similarity_top_k=3, k=2,
                                           persist_dir=str(tmp_path), collection_name="li-docs")
    index = O1Index(tiny_embedder, path=tmp_path, collection="li-docs")
    assert [h.text for h in index.search(QUERY, top_k=3, k=2)] == \
        [h.node.get_content() for h in retriever.retrieve(QUERY)]


def test_one_naming_rule_num_thoughts_everywhere_k_is_the_old_name(tiny_embedder, documents):
    import warnings

    O1Embeddings = pytest.importorskip("langchain_o1").O1Embeddings  # another distribution: not in this one's extras
    from o1_retriever.chroma import O1EmbeddingFunction
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns nowhere
        surfaces = [O1Embedding(embedder=tiny_embedder, num_thoughts=2),
                    O1EmbeddingFunction(tiny_embedder, num_thoughts=2), O1Embeddings(embedder=tiny_embedder, num_thoughts=2)]
        retriever = O1Retriever.from_documents(documents[:3], embedder=tiny_embedder, num_thoughts=2)
    assert all(s.num_thoughts == 2 for s in surfaces) and retriever._k == 2
    assert O1EmbeddingFunction(tiny_embedder, num_thoughts=2).get_config()["num_thoughts"] == 2
    for make in (lambda: O1Embedding(embedder=tiny_embedder, k=1), lambda: O1EmbeddingFunction(tiny_embedder, k=1),
                 lambda: O1Retriever(retriever.vector_store, tiny_embedder, k=1)):
        with pytest.warns(DeprecationWarning, match=r"\(k=\.\.\.\) is now .*\(num_thoughts=\.\.\.\)"):
            assert make() is not None
    with pytest.raises(ValueError, match="num_thoughts=2 and k=1"):
        O1Embedding(embedder=tiny_embedder, num_thoughts=2, k=1)
    # a config recorded before the rename ("k") still rebuilds
    assert O1EmbeddingFunction.build_from_config({"model": None, "k": 1, "options": {}}).num_thoughts == 1


# ---- an O1Embedding passed in is taken whole: its engine, local or served, and its num_thoughts ---------------------

def test_an_o1embedding_brings_its_num_thoughts(tiny_embedder, documents):
    embed_model = O1Embedding(embedder=tiny_embedder, num_thoughts=1)
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)
    retriever = O1Retriever.from_index(index, similarity_top_k=3)  # was: 3 thoughts, not the index's 1
    hits = retriever.retrieve(QUERY)
    assert len(retriever.last_thoughts) == 1
    assert _ids(hits) == _ids(index.as_retriever(similarity_top_k=3).retrieve(QUERY))
    built = O1Retriever.from_documents(documents[:3], embedder=embed_model, similarity_top_k=1)
    built.retrieve(QUERY)
    assert len(built.last_thoughts) == 1
    assert O1Retriever.from_index(index, num_thoughts=2)._k == 2  # an explicit count still wins
    assert O1Retriever(built.vector_store, tiny_embedder)._k == 3  # a bare engine: the documented default


def test_a_served_model_retrieves_what_the_local_one_does(tiny_embedder, documents):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from o1_retriever.server import BackgroundServer
    with BackgroundServer(tiny_embedder, name="tiny", api_key="k") as server:
        remote = O1Embedding(url=server.url, api_key="k", num_thoughts=2)
        # was: TypeError "embedder must be an O1Embedder ... got RemoteEmbedder"
        served = O1Retriever.from_documents(documents, embedder=remote, similarity_top_k=3, num_thoughts=2)
        hits = served.retrieve(QUERY)
        local = O1Retriever(served.vector_store, tiny_embedder, similarity_top_k=3, num_thoughts=2)
        assert _ids(hits) == _ids(local.retrieve(QUERY)) and served.last_thoughts == local.last_thoughts
        index = VectorStoreIndex.from_documents(documents[:4], embed_model=remote)
        assert _ids(O1Retriever.from_index(index, similarity_top_k=2, num_thoughts=2).retrieve(QUERY)) == \
            _ids(index.as_retriever(similarity_top_k=2).retrieve(QUERY))


def test_native_hybrid_reads_a_bm25_only_hit_of_a_collection_another_tool_wrote(tiny_embedder, tmp_path):
    """A collection written by plain Chroma (or O1Index, or LangChain) holds no LlamaIndex node content: a hit BM25
    alone finds must still come back as a node, as ChromaVectorStore reads the dense hits."""
    query = "volcanic eruption"
    vector = tiny_embedder.encode_queries(query, k=0).tolist()
    collection = chromadb.PersistentClient(path=str(tmp_path)).create_collection(
        "plain", metadata={"hnsw:space": "cosine"})
    # 100 passages nearest the query fill the dense pool; the one BM25 finds lies opposite it
    collection.add(ids=[f"near{i}" for i in range(100)], embeddings=[vector] * 100,
                   documents=[f"filler passage {i}" for i in range(100)])
    collection.add(ids=["far"], embeddings=[[-x for x in vector]], documents=["A volcanic eruption sends lava."],
                   metadatas=[{"source": "plain chroma"}])
    store = ChromaVectorStore(chroma_collection=collection)
    [hit] = O1Retriever(store, tiny_embedder, similarity_top_k=1, num_thoughts=0, hybrid=0.0).retrieve(query)
    # was: ValueError "Node content not found in metadata dict."
    assert (hit.node.node_id, hit.node.get_content()) == ("far", "A volcanic eruption sends lava.")
    assert hit.node.metadata["source"] == "plain chroma"


def test_similarity_top_k_is_read_and_set_as_on_vector_index_retriever(retriever):
    """LlamaIndex's VectorIndexRetriever exposes `similarity_top_k` to read and set; here setting it used to add an
    unused attribute, so the next retrieve still returned the old count, silently."""
    assert retriever.similarity_top_k == 3 and retriever.num_thoughts == 2
    retriever.similarity_top_k = 1
    assert len(retriever.retrieve(QUERY)) == 1
    for bad in (0, "2", True):
        with pytest.raises((TypeError, ValueError), match="similarity_top_k"):
            retriever.similarity_top_k = bad
    assert retriever.similarity_top_k == 1
