"""Audit of `o1-retriever serve` as a demanding user of an OpenAI-compatible embedding server meets it: a batch whose
clients all left stops thinking, a long query thinks as it does in process, and `usage` follows the window a
sentence-transformers 6 model truncates a document to."""
from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from tests.fixtures import tiny_composite

# The engine says once that it cut an input to its window: these tests send such inputs on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Some inputs are longer than")

THOUGHT_TOKENS = 200  # every thought is this long (min = max): seconds of decoding that nobody may wait for


@pytest.fixture(scope="module")
def slow_thinker(tiny_o1_dir):
    """The tiny model thinking THOUGHT_TOKENS tokens per thought, its LM head scaled x10 as `served_embedder`'s (a
    query's samples do not depend on its batch), with a count of the model's forwards (one per decode step) and of
    the rows each one ran."""
    import torch

    from o1_retriever import O1Embedder
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     max_new_tokens=THOUGHT_TOKENS, min_new_tokens=THOUGHT_TOKENS, temperature=0.7)
    with torch.no_grad():
        emb.thinker.model.lm_head.weight.mul_(10)
    emb.forwards = []
    emb.thinker.model.register_forward_hook(lambda module, args, kwargs, out: emb.forwards.append(
        kwargs["input_ids"].shape[0] if kwargs.get("input_ids") is not None else 0), with_kwargs=True)
    return emb


def _open_request(url: str, path: str, body: dict) -> socket.socket:
    """A POST sent on a raw socket whose answer is never read: closing the socket is a client that left."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _engine_idle(app) -> bool:
    return not app.state.batcher._running


def test_thinking_stops_when_every_client_of_the_batch_left(serve, slow_thinker, metric):
    """A batch already in the engine ran to max_new_tokens after its client disconnected: the one engine thread
    every client shares stayed busy for nobody. It now stops at the next decode step, and the server serves on."""
    with serve(slow_thinker, name="tiny", max_wait_ms=0) as (url, app):
        slow_thinker.forwards.clear()
        sock = _open_request(url, "/v1/think", {"input": ["why does bread rise?"], "k": 2})
        _wait_for(lambda: len(slow_thinker.forwards) >= 5, "the engine never started thinking")
        sock.close()
        _wait_for(lambda: metric(url, "o1_requests_total", {"route": "/v1/think", "status": "499"}) == 1,
                  "the server never noticed the client had gone")
        _wait_for(lambda: _engine_idle(app), "the engine never freed up", timeout=120)
        steps = len(slow_thinker.forwards)
        assert steps < THOUGHT_TOKENS // 2, f"{steps} decode steps of {THOUGHT_TOKENS} ran for a client that left"
        answer = httpx.post(url + "/v1/embeddings", json={"input": "after", "model": "tiny-document"}, timeout=60)
        assert answer.status_code == 200, answer.text


def test_a_batch_thinks_on_for_the_client_that_stayed(serve, slow_thinker):
    """Two requests merged into one batch: one client leaves, the other still gets its whole thoughts, the same as
    in process."""
    stay, leave = "why does bread rise?", "what is yeast?"
    with serve(slow_thinker, name="tiny", max_batch=2, max_wait_ms=5000) as (url, app):  # both, in one batch
        slow_thinker.forwards.clear()
        sock = _open_request(url, "/v1/think", {"input": [leave], "k": 1})
        answers = {}
        stayer = threading.Thread(target=lambda: answers.setdefault("r", httpx.post(
            url + "/v1/think", json={"input": [stay], "k": 1}, timeout=120)))
        stayer.start()
        _wait_for(lambda: len(slow_thinker.forwards) >= 5, "the engine never started thinking")
        sock.close()
        stayer.join(120)
        assert 2 in slow_thinker.forwards, "the two requests were not thought in one batch"
        answer = answers["r"]
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"][0]["thoughts"] == slow_thinker.think([stay], k=1)[0]


def test_a_graceful_timeout_that_runs_out_stops_the_thinking_too(slow_thinker):
    """SIGTERM's --graceful-timeout ran out on a request still thinking: its client got its 503, but the server
    went on decoding to max_new_tokens before it could exit. It now stops at the next decode step."""
    import dataclasses

    from o1_retriever.server import BackgroundServer
    # The 0.2 s of grace decode on, as many steps as the machine manages in that time: thoughts far longer than that
    # tell stopping from finishing on a fast machine as on a loaded one.
    tokens, saved = 900, slow_thinker.settings
    slow_thinker.settings = dataclasses.replace(saved, max_new_tokens=tokens, min_new_tokens=tokens)
    server = BackgroundServer(slow_thinker, name="tiny", max_wait_ms=0, graceful_timeout=0.2).start()
    try:
        slow_thinker.forwards.clear()
        answers = {}
        client = threading.Thread(target=lambda: answers.setdefault("r", httpx.post(
            server.url + "/v1/think", json={"input": ["why does bread rise?"], "k": 2}, timeout=120)))
        client.start()
        _wait_for(lambda: len(slow_thinker.forwards) >= 5, "the engine never started thinking")
    finally:
        server.stop(timeout=120)  # returns once the server has shut down, its engine thread included
        slow_thinker.settings = saved
    steps = len(slow_thinker.forwards)
    client.join(60)
    assert answers["r"].status_code == 503, answers["r"].text
    assert steps < tokens // 2, f"{steps} decode steps of {tokens} ran after the shutdown"


def test_without_a_stop_event_thinking_is_unchanged(served_embedder):
    """The hook is the server's: in process, a thread that set no event thinks as before, and an event set inside
    `stop_when` raises Abandoned instead of answering cut-short thoughts."""
    from o1_retriever.thinking import Abandoned, stop_when
    plain = served_embedder.think(["why does bread rise?"], k=2)
    with stop_when(threading.Event()):
        assert served_embedder.think(["why does bread rise?"], k=2) == plain
    gone = threading.Event()
    gone.set()
    with stop_when(gone), pytest.raises(Abandoned):
        served_embedder.think(["why does bread rise?"], k=2)
    assert served_embedder.think(["why does bread rise?"], k=2) == plain  # the event was this block's only


# ~40k characters: past what the server cuts (the 512-token windows), so the server read a prefix of it.
LONG_QUERY = "Why does bread rise when yeast makes gas in the dough? " * 700


def test_a_query_longer_than_the_window_thinks_as_in_process(server, served_embedder):
    """The server cut a long query to its window before the engine seeded its thoughts from its text: other thoughts,
    another vector, other cache keys than `encode_queries` in process. It now passes the query whole."""
    url, _ = server
    answer = httpx.post(url + "/v1/embeddings", timeout=120,
                        json={"model": "tiny-query", "input": LONG_QUERY, "k": 2, "return_thoughts": True})
    assert answer.status_code == 200, answer.text
    item = answer.json()["data"][0]
    local = served_embedder.encode_queries([LONG_QUERY], k=2, return_thoughts=True)
    assert item["thoughts"] == local.thoughts[0]
    np.testing.assert_allclose(item["embedding"], local.embeddings[0], atol=1e-5)
    thought = httpx.post(url + "/v1/think", json={"input": LONG_QUERY, "k": 2}, timeout=120)
    assert thought.json()["data"][0]["thoughts"] == served_embedder.think([LONG_QUERY], k=2)[0]
    window = served_embedder.settings.query_max_length - served_embedder.encoder.tokenizer.num_special_tokens_to_add()
    assert answer.json()["usage"]["prompt_tokens"] == window  # still what the model reads, not the whole query


@pytest.fixture(scope="module")
def composite_embedder(tmp_path_factory, tiny_o1_dir):
    return tiny_composite(tmp_path_factory.mktemp("composite6"), tiny_o1_dir)


@pytest.mark.parametrize("document_length", [128, 32])
def test_usage_follows_the_document_length_sentence_transformers_reads(serve, composite_embedder, document_length):
    """sentence-transformers 6 truncates a document to the module's document_length, not max_seq_length (64 here):
    `usage` said 62 tokens for a document the model read 126 (or 30) tokens of."""
    module = composite_embedder.encoder.model[0]
    if not hasattr(module, "document_length"):
        pytest.skip("this sentence-transformers has no document_length")
    text = "Yeast makes gas and the bread rises. " * 40  # ~360 tokens
    module.document_length = document_length
    try:
        read = module.preprocess([text], task="document")["input_ids"].shape[1]
        assert read == document_length  # what the model itself reads of it
        with serve(composite_embedder, name="st") as (url, _):
            answer = httpx.post(url + "/v1/embeddings", json={"model": "st-document", "input": text}, timeout=60)
            assert answer.status_code == 200, answer.text
            assert answer.json()["usage"]["prompt_tokens"] == read - 2  # less [CLS] and [SEP]
            np.testing.assert_allclose(answer.json()["data"][0]["embedding"],
                                       composite_embedder.encode_documents([text])[0], atol=1e-5)
    finally:
        module.document_length = None
