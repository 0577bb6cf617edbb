"""Thinkers behind an API (`o1_retriever.remote_thinking`), against a real server on loopback.

The server is `transformers serve` (transformers' own OpenAI-compatible server) over the tiny random chat LM, started
once for the module in a subprocess, offline. Error statuses come from `ScriptedProxy`, a real HTTP server in front
of it (transformers serve cannot fail on demand). LangChain is tested with the real `ChatOpenAI`; LlamaIndex with a
real `CustomLLM` subclass that calls the same server through httpx, since no LlamaIndex OpenAI LLM package is
installed (see chat_servers.py)."""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import types
import warnings

import numpy as np
import pytest

from o1_retriever import O1Embedder
from o1_retriever.encoding import SentenceEncoder
from o1_retriever.formatting import CHAT_INSTRUCTION
from o1_retriever.remote_thinking import (LangChainThinker, LlamaIndexThinker, OpenAIThinker, RepeatedThoughtsWarning,
                                          ThinkerAPIError)
from o1_retriever.settings import InferenceSettings
from tests.o1_retriever.chat_servers import (IGNORE_SAMPLING, ScriptedProxy, free_port, loopback_chat_llm_class,
                                             transformers_serve)

pytest.importorskip("httpx")
pytest.importorskip("fastapi", reason="transformers serve needs FastAPI and uvicorn")
pytest.importorskip("uvicorn", reason="transformers serve needs FastAPI and uvicorn")

SETTINGS = InferenceSettings(temperature=0.7, top_p=0.9, max_new_tokens=8, seed=0)
QUERIES = ["why does bread rise", "insulin and diabetes risk"]


@pytest.fixture(scope="module")
def served_model(tiny_lm_dir, tmp_path_factory):
    """The tiny chat LM with do_sample on in its generation config (transformers serve samples only then)."""
    path = tmp_path_factory.mktemp("served") / "tiny-chat"
    shutil.copytree(tiny_lm_dir, path)
    config = json.loads((path / "generation_config.json").read_text())
    (path / "generation_config.json").write_text(json.dumps(config | {"do_sample": True}))
    return path


@pytest.fixture(scope="module")
def server(served_model):
    """(base URL ending in /v1, the model name the server answers to)."""
    with transformers_serve(served_model) as url:
        yield url, str(served_model)


@pytest.fixture(scope="module")
def encoder(minilm_dir):
    return minilm_dir


@pytest.fixture(scope="module")
def loaded_encoder(encoder):
    return SentenceEncoder.load(encoder, "cpu")


def test_k_thoughts_per_query_from_a_server_that_ignores_n(server):
    url, model = server
    with ScriptedProxy(url) as proxy:
        # One request at a time: transformers serve seeds torch's global RNG per request, so requests that overlap
        # on it draw from each other's stream (a server with per-request generators, like vLLM, has no such limit).
        thinker = OpenAIThinker(proxy.url, model, retries=0, concurrency=1)
        thoughts = thinker.think(QUERIES, 3, SETTINGS)
        again = OpenAIThinker(proxy.url, model, retries=0, concurrency=1).think(QUERIES, 3, SETTINGS)
    assert [len(ts) for ts in thoughts] == [3, 3]
    assert all(isinstance(t, str) and t == t.strip() for ts in thoughts for t in ts)
    # It asked for n=3 once, got one choice, then asked once per thought, and went on so for the next query.
    assert thinker.n_per_request is False
    first = proxy.bodies[:6]
    assert [b.get("n", 1) for b in first] == [3, 1, 1, 1, 1, 1]
    for query in QUERIES:
        message = {"role": "user", "content": CHAT_INSTRUCTION.format(query=query)}
        asked = [b for b in first if b["messages"] == [message]]
        assert len(asked) == 3 and len({b["seed"] for b in asked}) == 3  # each thought its own seed
        assert {(b["temperature"], b["top_p"], b["max_tokens"]) for b in asked} == {(0.7, 0.9, 8)}
    assert again == thoughts  # transformers serve honours the seeds: the same thoughts again


def test_a_server_that_ignores_temperature_and_seed_is_warned_about_once(server):
    """transformers serve over a model whose generation config does not sample decodes greedily whatever temperature
    and seed a request sends: k identical thoughts per query, worth one. The thinker sends the standard sampling
    fields, a seed per thought, and says once that the server ignored them."""
    url, model = server
    with ScriptedProxy(url, forward_extra=IGNORE_SAMPLING) as proxy:
        thinker = OpenAIThinker(proxy.url, model, retries=0, concurrency=1)
        with pytest.warns(RepeatedThoughtsWarning) as caught:
            thoughts = thinker.think(QUERIES, 3, SETTINGS)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per thinker: not again
            assert thinker.think(QUERIES[:1], 3, SETTINGS) == thoughts[:1]
    assert [len(set(ts)) for ts in thoughts] == [1, 1] and all(ts[0] for ts in thoughts)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"openai:{proxy.url}|{model}: the 3 thoughts were identical for each of 2 queries "
                              "although the thinker samples with temperature=0.7, top_p=0.9 and a seed per thought")
    assert "the server appears to ignore temperature/seed" in message and '"do_sample": true' in message
    for query in QUERIES:
        asked = [b for b in proxy.bodies[:6] if CHAT_INSTRUCTION.format(query=query) in b["messages"][0]["content"]]
        assert len({b["seed"] for b in asked}) == 3
        assert {(b["temperature"], b["top_p"]) for b in asked} == {(0.7, 0.9)}
    # Greedy decoding asked for: identical thoughts are expected, nothing to say.
    with ScriptedProxy(url, forward_extra=IGNORE_SAMPLING) as proxy, warnings.catch_warnings():
        warnings.simplefilter("error")
        OpenAIThinker(proxy.url, model, retries=0).think(QUERIES, 3, dataclasses.replace(SETTINGS, temperature=0.0))


def test_a_server_that_samples_gets_no_warning(server):
    url, model = server
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        thoughts = OpenAIThinker(url, model, retries=0, concurrency=1).think(QUERIES, 3, SETTINGS)
    assert all(len(set(ts)) > 1 for ts in thoughts)


def test_a_server_that_honours_n_gets_one_request_per_query(server):
    url, model = server
    with ScriptedProxy(url, honour_n=True) as proxy:
        thinker = OpenAIThinker(proxy.url, model, retries=0)
        thoughts = thinker.think(QUERIES, 3, SETTINGS)
    assert [len(ts) for ts in thoughts] == [3, 3] and thinker.n_per_request is True
    assert sorted(b["messages"][0]["content"] for b in proxy.bodies) == sorted(CHAT_INSTRUCTION.format(query=q)
                                                                              for q in QUERIES)
    assert [b["n"] for b in proxy.bodies] == [3, 3]
    assert all("min_tokens" not in b for b in proxy.bodies)  # only sent when set


def test_min_new_tokens_is_sent_as_min_tokens():
    with ScriptedProxy(None, failures=[400]) as proxy:  # records the request, then refuses it
        with pytest.raises(ThinkerAPIError):
            OpenAIThinker(proxy.url, "m", retries=0).think(["q"], 1, dataclasses.replace(SETTINGS, min_new_tokens=4))
    assert proxy.bodies[0]["min_tokens"] == 4 and proxy.bodies[0]["max_tokens"] == 8


def test_a_composite_thinks_through_the_endpoint_and_embeds_locally(server, encoder, tmp_path):
    url, model = server
    thinker = OpenAIThinker(url, model)
    emb = O1Embedder.composite(thinker=thinker, encoder=encoder, device="cpu", thought_cache=tmp_path / "t.sqlite",
                               max_new_tokens=8, temperature=0.7)
    out = emb.encode_queries(QUERIES, k=2, return_thoughts=True)
    assert out.embeddings.shape == (2, emb.dim) == (2, 384)
    assert np.isfinite(out.embeddings).all() and out.embeddings.dtype == np.float32
    assert [len(ts) for ts in out.thoughts] == [2, 2]
    assert emb.thinker_fingerprint == thinker.fingerprint == f"openai:{url}|{model}"
    assert emb.source.from_parts and emb.source.thinker == thinker.fingerprint
    assert emb.encode_documents(["yeast makes gas", "a loaf"]).shape == (2, emb.dim)
    # the thoughts are in the cache under the endpoint's key: a new embedder for the same endpoint asks nothing
    with ScriptedProxy(None, failures=[500]) as down:  # any request to this one would fail
        other = O1Embedder.composite(thinker=OpenAIThinker(url, model), encoder=encoder, device="cpu",
                                     thought_cache=tmp_path / "t.sqlite", max_new_tokens=8, temperature=0.7)
        assert other.cached_fraction(QUERIES, k=2) == 1.0
        assert other.think(QUERIES, k=2) == out.thoughts
        assert down.bodies == []


def test_an_index_searches_with_a_thinker_behind_an_endpoint(server, encoder, tmp_path):
    """A local Chroma index over a composite whose thinker is remote: documents and queries embed here."""
    from o1_retriever import O1Index
    url, model = server
    emb = O1Embedder.composite(thinker=OpenAIThinker(url, model), encoder=encoder, device="cpu", thought_cache=False,
                               max_new_tokens=8, temperature=0.7)
    index = O1Index(emb, tmp_path / "db", num_thoughts=1)
    assert index.add(["d1", "d2"], ["Yeast makes gas that lifts the dough.", "Tides follow the moon."]) == 2
    hits = index.search("why does bread rise", top_k=2, k=1)
    assert {h.id for h in hits} == {"d1", "d2"}


def test_thought_cache_keys_differ_per_endpoint_and_model(loaded_encoder):
    def keys(base_url, model):
        return O1Embedder(OpenAIThinker(base_url, model), loaded_encoder, name="x", thought_cache=False)._keys(
            QUERIES, 3)

    base = keys("http://127.0.0.1:8000/v1", "qwen")
    assert keys("http://127.0.0.1:8000/v1/", "qwen") == keys("http://127.0.0.1:8000", "qwen") == base
    assert keys("http://127.0.0.1:8001/v1", "qwen") != base
    assert keys("http://127.0.0.1:8000/v1", "llama") != base
    assert len(set(base)) == len(QUERIES)


def test_thought_cache_keys_follow_the_sampling_settings_sent_and_not_the_secrets(loaded_encoder):
    def keys(base_url="http://127.0.0.1:8000/v1", api_key=None, **settings):
        return O1Embedder(OpenAIThinker(base_url, "qwen", api_key), loaded_encoder, name="x", thought_cache=False,
                          **settings)._keys(QUERIES, 3)

    base = keys()
    for setting in ({"temperature": 0.8}, {"top_p": 0.5}, {"seed": 1}, {"seed": None}, {"max_new_tokens": 64},
                    {"min_new_tokens": 4}):
        assert keys(**setting) != base, setting
    assert keys(api_key="sk-a") == keys(api_key="sk-b") == base
    assert keys("http://u:pw1@127.0.0.1:8000/v1") == keys("http://u:pw2@127.0.0.1:8000/v1/") == base


def test_a_server_that_is_down_is_named(server):
    port = free_port()  # nothing listens there
    thinker = OpenAIThinker(f"http://127.0.0.1:{port}/v1", "m", retries=1, backoff=0)
    with pytest.raises(ThinkerAPIError, match=rf"could not reach http://127\.0\.0\.1:{port}/v1/chat/completions "
                                              r"\(2 tries; is the server running\?\)") as info:
        thinker.think(QUERIES, 2, SETTINGS)
    assert info.value.status is None and info.value.url.endswith(f":{port}/v1/chat/completions")


def test_a_500_is_retried_then_reported_with_url_and_status():
    with ScriptedProxy(None, failures=[500]) as proxy:
        thinker = OpenAIThinker(proxy.url, "m", retries=2, backoff=0)
        with pytest.raises(ThinkerAPIError, match=r"/v1/chat/completions answered HTTP 500 after 3 tries for model "
                                                  r"'m': scripted 500") as info:
            thinker.think(QUERIES[:1], 2, SETTINGS)
    assert info.value.status == 500 and info.value.url == proxy.url + "/chat/completions"
    # n=2 is asked once (a server refusing n may answer 500, as llama.cpp does), then one thought, 3 tries
    assert proxy.statuses == [500] * 4 and [b.get("n", 1) for b in proxy.bodies] == [2, 1, 1, 1]


def test_429_and_503_are_retried_until_the_server_answers(server):
    url, model = server
    with ScriptedProxy(url, failures=[429, 503]) as proxy:
        thoughts = OpenAIThinker(proxy.url, model, retries=2, backoff=0, concurrency=1, n_per_request=False).think(
            QUERIES[:1], 2, SETTINGS)
    assert [len(ts) for ts in thoughts] == [2]
    assert proxy.statuses[:2] == [429, 503] and set(proxy.statuses[2:]) == {200}
    assert proxy.bodies[0] == proxy.bodies[2]  # the same request, sent again


def test_a_model_the_server_does_not_serve_is_named_with_the_servers_reason(server):
    url, model = server
    thinker = OpenAIThinker(url, "no-such/model", retries=0)
    with pytest.raises(ThinkerAPIError, match=r"chat/completions answered HTTP 400 for model 'no-such/model': "
                                              r"Server is pinned to") as info:
        thinker.think(QUERIES[:1], 2, SETTINGS)
    assert info.value.url == url + "/chat/completions" and info.value.status == 400


def test_bad_arguments_are_refused_by_name(loaded_encoder):
    with pytest.raises(ValueError, match=r"base_url='127.0.0.1:8000' must be an http\(s\) URL"):
        OpenAIThinker("127.0.0.1:8000", "m")
    with pytest.raises(ValueError, match=r"model='' must be"):
        OpenAIThinker("http://127.0.0.1:8000/v1", "")
    with pytest.raises(ValueError, match=r"concurrency must be > 0, got 0"):
        OpenAIThinker("http://127.0.0.1:8000/v1", "m", concurrency=0)
    thinker = OpenAIThinker("http://127.0.0.1:8000/v1", "m")
    with pytest.raises(ValueError, match=r"read= needs the thinker's own KV cache; openai:http://127\.0\.0\.1:8000/v1"):
        thinker.think(QUERIES, 2, SETTINGS, read=lambda generation: None)
    with pytest.raises(ValueError, match=r"quantization='4bit' applies to an in-process thinker"):
        O1Embedder.composite(thinker=thinker, encoder="unused", quantization="4bit")
    with pytest.raises(TypeError, match=r"chat_model must be a LangChain BaseChatModel .* got str"):
        LangChainThinker("gpt-4o")
    with pytest.raises(TypeError, match=r"llm must be a LlamaIndex LLM .* got str"):
        LlamaIndexThinker("gpt-4o")


@pytest.mark.parametrize("cls, module, package", [
    (LangChainThinker, "langchain_core.language_models", "langchain-core"),
    (LlamaIndexThinker, "llama_index.core.llms", "llama-index-core")])
def test_a_missing_framework_names_the_pip_command(cls, module, package, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # what `import` sees when the package is not installed
    with pytest.raises(ImportError, match=f"pip install -U {package}"):
        cls(object())
    monkeypatch.setitem(sys.modules, module, types.ModuleType(module))  # installed, but too old to have the class
    with pytest.raises(ImportError, match=f"pip install -U {package}"):
        cls(object())


def test_langchain_chat_openai_thinks_through_its_batch(server, loaded_encoder):
    langchain_openai = pytest.importorskip("langchain_openai")
    url, model = server
    with ScriptedProxy(url) as proxy:
        chat = langchain_openai.ChatOpenAI(base_url=proxy.url, model=model, api_key="unused", temperature=0.7,
                                           max_tokens=8, max_retries=0)
        thinker = LangChainThinker(chat, concurrency=2)
        thoughts = thinker.think(QUERIES, 2, SETTINGS)
    assert [len(ts) for ts in thoughts] == [2, 2] and all(isinstance(t, str) for ts in thoughts for t in ts)
    assert len(proxy.bodies) == 4
    assert {b["messages"][0]["content"] for b in proxy.bodies} == {CHAT_INSTRUCTION.format(query=q) for q in QUERIES}
    assert thinker.fingerprint.startswith("langchain:langchain_openai.chat_models.base.ChatOpenAI|")
    assert proxy.url in thinker.fingerprint and model in thinker.fingerprint and "unused" not in thinker.fingerprint
    other = LangChainThinker(langchain_openai.ChatOpenAI(base_url=proxy.url, model="other", api_key="unused"))
    assert other.fingerprint != thinker.fingerprint
    emb = O1Embedder(LangChainThinker(chat), loaded_encoder, name="lc", thought_cache=False)
    assert emb._keys(QUERIES, 2) != O1Embedder(other, loaded_encoder, name="lc", thought_cache=False)._keys(QUERIES, 2)


def test_llamaindex_llm_thinks_and_the_composite_embeds(server, encoder):
    pytest.importorskip("llama_index.core")
    url, model = server
    llm = loopback_chat_llm_class()(api_base=url, model=model)
    thinker = LlamaIndexThinker(llm, concurrency=2)
    assert thinker.fingerprint.startswith("llama-index:")
    assert url in thinker.fingerprint and model in thinker.fingerprint
    emb = O1Embedder.composite(thinker=thinker, encoder=encoder, device="cpu", thought_cache=False)
    out = emb.encode_queries(QUERIES, k=2, return_thoughts=True)
    assert out.embeddings.shape == (2, 384) and np.isfinite(out.embeddings).all()
    assert [len(ts) for ts in out.thoughts] == [2, 2]
    other = LlamaIndexThinker(loopback_chat_llm_class()(api_base=url, model=model, temperature=0.2))
    assert other.fingerprint != thinker.fingerprint  # the LLM's own sampling settings apply, so they key the cache


def test_the_guides_snippet_runs_against_a_real_server(server, encoder, capsys):
    """docs/guide.md "Thinking through an API", as written but for the server's address and model name."""
    import re
    from pathlib import Path
    guide = (Path(__file__).resolve().parents[2] / "docs" / "guide.md").read_text()
    section = guide.split("## Thinking through an API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    url, model = server
    code = code.replace("http://127.0.0.1:8000/v1", url).replace("HuggingFaceTB/SmolLM2-135M-Instruct", model)
    exec(compile(code, "guide.md", "exec"), {})
    assert capsys.readouterr().out.rstrip().endswith("(1, 384)")
