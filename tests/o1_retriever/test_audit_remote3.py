"""OpenAIThinker against the reply shapes real servers give (vLLM, Ollama, llama.cpp server, OpenAI, proxies):
servers that ignore sampling or refuse `n`, error bodies, empty or missing content, non-JSON, slow or absent servers,
base URLs as users write them, and API keys that must not leak. Each server is a real HTTP server on loopback
(`chat_servers.ChatStub`) whose answers are scripted, since none of these shapes can be asked of a real model
server on demand."""
from __future__ import annotations

import warnings

import pytest

from o1_retriever.remote_thinking import OpenAIThinker, RepeatedThoughtsWarning
from o1_retriever.settings import InferenceSettings
from tests.o1_retriever.chat_servers import ChatStub, chat_reply, ignores_sampling

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
        with pytest.warns(RepeatedThoughtsWarning, match=r"samples with its own sampling settings"):
            LangChainThinker(chat).think(QUERIES[:1], 3, SETTINGS)


@pytest.mark.parametrize("content", ["", None, "   "])
def test_only_empty_thoughts_are_warned_about(content):
    with ChatStub(lambda body: (200, chat_reply(content), {})) as stub:
        with pytest.warns(RepeatedThoughtsWarning, match=r"wrote only empty thoughts for 2 queries") as got:
            thoughts = OpenAIThinker(stub.url, "m", retries=0).think(QUERIES, 2, SETTINGS)
    assert thoughts == [["", ""], ["", ""]] and len(got) == 1  # not also called identical
