"""O1Retriever's settings after construction (num_thoughts, filters) and MetadataFilters Chroma cannot search:
checked before any thinking, the value and what is allowed named."""
from __future__ import annotations

import asyncio

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

from llama_index.embeddings.o1 import O1Embedding
from llama_index.retrievers.o1 import O1Retriever

QUERY = "Does ALDH1 expression predict poor prognosis in breast cancer?"


@pytest.fixture
def retriever(tiny_embedder, scifact_docs):
    documents = [Document(text=d["text"], metadata={"corpus_id": d["id"], "n": i}) for i, d in enumerate(scifact_docs[:8])]
    return O1Retriever.from_documents(documents, embedder=tiny_embedder, similarity_top_k=3, num_thoughts=1)


def _numbers(hits):
    return [h.node.metadata["n"] for h in hits]


def test_num_thoughts_and_filters_are_set_checked_and_used(tiny_embedder, retriever):
    """`retriever.num_thoughts = 2` raised "property has no setter"; `retriever.filters = ...` added an attribute
    nothing read, so every search still ran unfiltered, silently."""
    retriever.num_thoughts = 2
    retriever.retrieve(QUERY)
    assert retriever.last_thoughts == tiny_embedder.think(QUERY, k=2)
    above = MetadataFilters(filters=[MetadataFilter(key="n", value=4, operator=FilterOperator.GT)])
    retriever.filters = above
    assert retriever.filters is above and set(_numbers(retriever.retrieve(QUERY))) == {5, 6, 7}
    assert set(_numbers(asyncio.run(retriever.aretrieve(QUERY)))) == {5, 6, 7}
    for name, value, error in (("num_thoughts", -1, "num_thoughts must be >= 0"),
                               ("num_thoughts", True, "num_thoughts must be an int >= 0 .*got True"),
                               ("filters", {"n": 1}, "filters must be a llama_index MetadataFilters .*got dict")):
        with pytest.raises((TypeError, ValueError), match=error):
            setattr(retriever, name, value)
    assert retriever.num_thoughts == 2 and retriever.filters is above  # a refused value leaves the old one
    retriever.filters = None
    assert len(retriever.retrieve(QUERY)) == 3


@pytest.mark.parametrize("hybrid", [None, 0.5])
def test_filters_chroma_cannot_search_are_refused_before_thinking(tiny_embedder, retriever, hybrid):
    """TEXT_MATCH, IS_EMPTY: ChromaVectorStore's translation refused them only inside the search, after thinking."""
    for operator in (FilterOperator.TEXT_MATCH, FilterOperator.IS_EMPTY):
        filters = MetadataFilters(filters=[MetadataFilter(key="corpus_id", value="x", operator=operator)])
        with pytest.raises(ValueError, match=f"filters .* cannot be searched in Chroma: Filter operator "
                                             f"{operator} not supported"):
            O1Retriever(retriever.vector_store, tiny_embedder, filters=filters, hybrid=hybrid)
        with pytest.raises(ValueError, match="cannot be searched in Chroma"):
            retriever.filters = filters


@pytest.mark.parametrize("hybrid", [None, 0.5])
def test_empty_metadata_filters_admit_every_node(tiny_embedder, retriever, hybrid):
    """MetadataFilters(filters=[]) (built from a user's empty selection) became Chroma's where={}, which the hybrid
    search's listing refused ("Expected where to have exactly one operator"); it admits every node, as the dense
    search and other stores take it."""
    empty = O1Retriever(retriever.vector_store, tiny_embedder, similarity_top_k=3, num_thoughts=1, hybrid=hybrid,
                        filters=MetadataFilters(filters=[]))
    plain = O1Retriever(retriever.vector_store, tiny_embedder, similarity_top_k=3, num_thoughts=1, hybrid=hybrid)
    assert [h.node.node_id for h in empty.retrieve(QUERY)] == [h.node.node_id for h in plain.retrieve(QUERY)]


def test_filters_on_another_store_are_left_to_it(tiny_embedder, scifact_docs):
    documents = [Document(text=d["text"], metadata={"n": i}) for i, d in enumerate(scifact_docs[:6])]
    index = VectorStoreIndex.from_documents(documents, embed_model=O1Embedding(embedder=tiny_embedder, num_thoughts=0))
    retriever = O1Retriever.from_index(index, similarity_top_k=6, filters=MetadataFilters(filters=[
        MetadataFilter(key="n", value=[1, 3], operator=FilterOperator.IN)]))
    assert sorted(_numbers(retriever.retrieve(QUERY))) == [1, 3]


def test_from_documents_checks_every_setting_before_embedding(tiny_embedder, scifact_docs, tmp_path):
    """hybrid=2, attach_thoughts='no', a filter Chroma cannot search or an unknown argument were refused only after
    every document was embedded and written (a persistent collection kept them); now nothing is embedded."""
    import chromadb
    documents = [Document(text=d["text"]) for d in scifact_docs[:4]]
    bad_filter = MetadataFilters(filters=[MetadataFilter(key="n", value="x", operator=FilterOperator.TEXT_MATCH)])
    for settings, error in (({"hybrid": 2}, r"dense_weight must be in \[0, 1\]"),
                            ({"attach_thoughts": "no"}, "attach_thoughts must be True or False"),
                            ({"filters": bad_filter}, "cannot be searched in Chroma"),
                            ({"top_k": 3}, "top_k")):
        with pytest.raises((TypeError, ValueError), match=error):
            O1Retriever.from_documents(documents, embedder=tiny_embedder, persist_dir=str(tmp_path), **settings)
        assert chromadb.PersistentClient(path=str(tmp_path)).get_collection("o1_retriever").count() == 0


def test_aretrieve_reads_a_docstore_through_its_async_api(tiny_embedder, scifact_docs):
    """A store that keeps no text (SimpleVectorStore, or a remote one) leaves the nodes to the docstore; aretrieve
    read them with the synchronous get_nodes on the event loop (a remote docstore's network round trip held it),
    where VectorIndexRetriever awaits aget_nodes."""
    from llama_index.core import StorageContext
    from llama_index.core.storage.docstore import SimpleDocumentStore

    class RecordingDocstore(SimpleDocumentStore):
        def get_nodes(self, node_ids, raise_error=True):
            self.sync_reads = getattr(self, "sync_reads", 0) + 1
            return super().get_nodes(node_ids, raise_error)

    documents = [Document(text=d["text"], metadata={"n": i}) for i, d in enumerate(scifact_docs[:6])]
    index = VectorStoreIndex.from_documents(documents, embed_model=O1Embedding(embedder=tiny_embedder, num_thoughts=1),
                                            storage_context=StorageContext.from_defaults(docstore=RecordingDocstore()))
    retriever = O1Retriever.from_index(index, similarity_top_k=3)
    hits = asyncio.run(retriever.aretrieve(QUERY))
    assert getattr(index.docstore, "sync_reads", 0) == 0
    assert [(h.node.node_id, h.score) for h in hits] == [(h.node.node_id, h.score) for h in retriever.retrieve(QUERY)]
    assert index.docstore.sync_reads == 1 and "o1_thoughts" not in index.docstore.get_node(hits[0].node.node_id).metadata
