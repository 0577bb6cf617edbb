"""The O1 LlamaIndex retriever under a demanding user: filters changed in place, instrumentation events of
concurrent calls, copying and pickling (tiny model, real Chroma)."""
from __future__ import annotations

import asyncio
import copy
import pickle

import pytest
from llama_index.core import Document
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

from llama_index.retrievers.o1 import O1Retriever

QUERIES = ["insulin and diabetes", "breast cancer prognosis", "vaccine immune response"]


class Events(BaseEventHandler):
    """A real instrumentation handler on the root dispatcher."""
    events: list = []

    @classmethod
    def class_name(cls) -> str:
        return "Events"

    def handle(self, event, **kwargs):
        self.events.append(event)

    def of(self, name):
        return [e for e in self.events if e.class_name() == name]


@pytest.fixture
def events():
    handler, root = Events(events=[]), get_dispatcher()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


@pytest.fixture
def retriever(recording_embedder, scifact_docs):
    documents = [Document(text=d["text"], metadata={"corpus_id": d["id"]}) for d in scifact_docs[:10]]
    retriever = O1Retriever.from_documents(documents, embedder=recording_embedder, similarity_top_k=3,
                                           num_thoughts=1)
    recording_embedder.threads.clear()
    return retriever


def _hits(nodes):
    return [(h.node.node_id, h.node.metadata["o1_thoughts"], round(h.score, 5)) for h in nodes]


@pytest.mark.parametrize("hybrid", [None, 0.5])
def test_filters_changed_in_place_are_refused_before_thinking(recording_embedder, retriever, hybrid):
    """A MetadataFilters edited after it was set reached Chroma only after the thinking, and failed there with
    the store's bare "Filter operator ... not supported"."""
    retriever = O1Retriever(retriever.vector_store, recording_embedder, similarity_top_k=3, num_thoughts=1,
                            hybrid=hybrid, filters=MetadataFilters(filters=[MetadataFilter(
                                key="corpus_id", value="x", operator=FilterOperator.NE)]))
    retriever.filters.filters.append(MetadataFilter(key="corpus_id", value="x", operator=FilterOperator.TEXT_MATCH))
    for call in (lambda: retriever.retrieve(QUERIES[0]), lambda: asyncio.run(retriever.aretrieve(QUERIES[0]))):
        with pytest.raises(ValueError, match="filters .* cannot be searched in Chroma: Filter operator"):
            call()
    assert recording_embedder.threads == []  # nothing was thought
    retriever.filters.filters.clear()  # emptied in place: admits every node (Chroma itself refuses where={})
    assert len(retriever.retrieve(QUERIES[0])) == 3


def test_concurrent_aretrieves_fire_each_calls_events_once_as_retrieve_does(retriever, events):
    alone = {q: _hits(retriever.retrieve(q)) for q in QUERIES}
    sync_names = [e.class_name() for e in events.events if e.class_name() != "SpanDropEvent"]
    events.events.clear()

    async def run():
        return await asyncio.gather(*[retriever.aretrieve(q) for q in QUERIES])
    found = asyncio.run(run())
    assert [_hits(nodes) for nodes in found] == [alone[q] for q in QUERIES]
    names = [e.class_name() for e in events.events if e.class_name() != "SpanDropEvent"]
    assert sorted(names) == sorted(sync_names)  # the same events, once per call
    for name in ("RetrievalStartEvent", "EmbeddingStartEvent", "O1ThoughtsEvent", "EmbeddingEndEvent",
                 "RetrievalEndEvent"):
        assert len(events.of(name)) == len(QUERIES), name
    by_span = {}
    for e in events.events:
        by_span.setdefault(e.span_id, []).append(e)
    for own in by_span.values():  # each call's events carry its own query and its own hits
        [start] = [e for e in own if e.class_name() == "RetrievalStartEvent"]
        query = start.str_or_query_bundle
        [thoughts] = [e for e in own if e.class_name() == "O1ThoughtsEvent"]
        [embedded] = [e for e in own if e.class_name() == "EmbeddingEndEvent"]
        [end] = [e for e in own if e.class_name() == "RetrievalEndEvent"]
        assert thoughts.query == query and embedded.chunks == [query]
        assert [n.node.metadata["o1_thoughts"] for n in end.nodes][0] == thoughts.thoughts
        assert _hits(end.nodes) == alone[query]


def test_deepcopy_copies_the_settings_and_shares_the_store_and_model(retriever):
    """copy.deepcopy failed deep in chromadb ("cannot pickle 'builtins.Bindings' object")."""
    retriever.filters = MetadataFilters(filters=[MetadataFilter(key="corpus_id", value="x",
                                                                operator=FilterOperator.NE)])
    twin = copy.deepcopy(retriever)
    assert twin.vector_store is retriever.vector_store and twin.embedder is retriever.embedder
    twin.filters.filters[0].value = "y"
    twin.similarity_top_k = 2
    assert retriever.filters.filters[0].value == "x" and retriever.similarity_top_k == 3
    assert _hits(twin.retrieve(QUERIES[0]))[:2] == _hits(retriever.retrieve(QUERIES[0]))[:2]


def test_pickling_is_refused_with_what_to_do(retriever):
    """pickle failed with "cannot pickle '_thread.lock' object", naming neither the model nor the store."""
    with pytest.raises(TypeError, match="cannot pickle an O1Retriever: it holds a loaded model.*O1Embedding itself"):
        pickle.dumps(retriever)
