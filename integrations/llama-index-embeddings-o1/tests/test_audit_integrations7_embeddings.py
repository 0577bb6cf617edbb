"""O1Embedding under a demanding user: copying, serialization round trips, and the instrumentation events of
sync, async and batch calls (tiny model)."""
from __future__ import annotations

import asyncio
import copy
import pickle

import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler

from llama_index.embeddings.o1 import O1Embedding

QUERIES = ["insulin and diabetes", "breast cancer prognosis"]


class Events(BaseEventHandler):
    events: list = []

    @classmethod
    def class_name(cls) -> str:
        return "Events"

    def handle(self, event, **kwargs):
        self.events.append(event)

    def names(self):
        return [e.class_name() for e in self.events if e.class_name() != "SpanDropEvent"]


@pytest.fixture
def events():
    handler, root = Events(events=[]), get_dispatcher()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


def test_deepcopy_copies_the_settings_and_shares_the_engine(tiny_embedder):
    """copy.deepcopy failed inside the engine ("cannot pickle '_thread.lock' object")."""
    from llama_index.core.callbacks import CallbackManager, LlamaDebugHandler
    embed_model = O1Embedding(embedder=tiny_embedder, num_thoughts=1,
                              callback_manager=CallbackManager([LlamaDebugHandler(print_trace_on_end=False)]))
    twin = copy.deepcopy(embed_model)
    assert twin.embedder is tiny_embedder and twin.to_dict() == embed_model.to_dict()
    assert twin.callback_manager is embed_model.callback_manager  # the handlers see the copy's calls too
    twin.num_thoughts = 2
    assert embed_model.num_thoughts == 1
    assert twin.get_query_embedding(QUERIES[0]) == O1Embedding(embedder=tiny_embedder, num_thoughts=2)\
        .get_query_embedding(QUERIES[0])


def test_to_dict_json_and_pickle_round_trip_to_the_same_vectors(tiny_embedder):
    embed_model = O1Embedding(embedder=tiny_embedder, num_thoughts=1, embed_batch_size=4)
    for loaded in (O1Embedding.from_dict(embed_model.to_dict()), O1Embedding.from_json(embed_model.to_json()),
                   pickle.loads(pickle.dumps(embed_model))):
        assert loaded.embedder is not tiny_embedder and loaded.to_dict() == embed_model.to_dict()
        assert loaded.get_query_embedding(QUERIES[0]) == pytest.approx(embed_model.get_query_embedding(QUERIES[0]),
                                                                       abs=1e-5)


def test_each_call_fires_its_embedding_events_once(tiny_embedder, events):
    embed_model = O1Embedding(embedder=tiny_embedder, num_thoughts=1, embed_batch_size=2)
    query = embed_model.get_query_embedding(QUERIES[0])
    assert events.names() == ["EmbeddingStartEvent", "O1ThoughtsEvent", "EmbeddingEndEvent"]
    [end] = [e for e in events.events if e.class_name() == "EmbeddingEndEvent"]
    assert end.chunks == [QUERIES[0]] and end.embeddings == [query]
    events.events.clear()
    assert asyncio.run(embed_model.aget_query_embedding(QUERIES[0])) == pytest.approx(query, abs=1e-5)
    assert events.names() == ["EmbeddingStartEvent", "O1ThoughtsEvent", "EmbeddingEndEvent"]
    for call in (lambda texts: embed_model.get_text_embedding_batch(texts),
                 lambda texts: asyncio.run(embed_model.aget_text_embedding_batch(texts))):
        events.events.clear()
        vectors = call(QUERIES * 2)  # two batches of two: one pair of events per batch (async: both starts
        # first, as LlamaIndex runs the batches together), no thinking
        assert sorted(events.names()) == ["EmbeddingEndEvent"] * 2 + ["EmbeddingStartEvent"] * 2
        ends = [e for e in events.events if e.class_name() == "EmbeddingEndEvent"]
        assert sorted((c, tuple(v)) for e in ends for c, v in zip(e.chunks, e.embeddings)) == \
            sorted(zip(QUERIES * 2, map(tuple, vectors)))
