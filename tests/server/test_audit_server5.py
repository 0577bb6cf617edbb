"""Audit of `o1-retriever serve`'s bounded queue (--max-queue) as clients of an embedding server meet it under load:
room is given in arrival order, a wait for it is bounded, and a client that leaves gives its place up."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.fixtures import Gated
from tests.server.conftest import metric_value

DOCS = {"model": "tiny-document"}


def _until(condition, what: str = "the server never got there") -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


class Posts:
    """Concurrent real HTTP clients, each in its own thread; `answers[text]` is the response of the request whose
    first input is `text`."""

    def __init__(self, url: str):
        self.url, self.answers, self.threads = url, {}, []

    def send(self, texts: list[str], timeout: float = 60) -> None:
        def post():
            try:
                self.answers[texts[0]] = httpx.post(self.url + "/v1/embeddings", json=DOCS | {"input": texts},
                                                    timeout=timeout)
            except httpx.TimeoutException as e:
                self.answers[texts[0]] = e
        thread = threading.Thread(target=post)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)


def _health(url: str) -> dict:
    return httpx.get(url + "/health").json()


@pytest.fixture
def held(served_embedder, request):
    """A server with room for 4 waiting texts whose engine is busy with "hold" (running texts take no room) and
    3 texts queued behind it: room is left for 1 more. Yields (url, engine, clients). Its --queue-wait (the param,
    else 60 s) outlasts every step of a test that does not wait it out, however slow the machine."""
    from o1_retriever.server import BackgroundServer
    from o1_retriever.server.app import Limits
    engine = Gated(served_embedder)
    queue_wait = getattr(request, "param", 60.0)
    server = BackgroundServer(engine, name="tiny", max_wait_ms=0,
                              limits=Limits(max_queue=4, queue_wait=queue_wait)).start()
    clients = Posts(server.url)
    try:
        clients.send(["hold"])
        _until(lambda: "hold" in engine.computed)
        clients.send(["a", "b", "c"])
        _until(lambda: _health(server.url)["queue_depth"] == 3)
        yield server.url, engine, clients
    finally:
        engine.release.set()
        clients.join()
        server.stop()


def test_a_large_request_keeps_its_turn_against_later_small_ones(held):
    """A request larger than the room left got a 429 at once, and each retry met a queue that smaller requests
    arriving after it had filled again: under steady load it never got in. It now waits in line, and a later
    request that would fit waits behind it: the engine computes them in arrival order."""
    url, engine, clients = held
    clients.send(["d", "e"])  # 3 queued + 2 > 4: waits for room
    _until(lambda: _health(url)["waiting_for_room"] == 2)
    clients.send(["f"])  # would fit (3 + 1 <= 4), but "d e" came first
    _until(lambda: _health(url)["waiting_for_room"] == 3)
    assert metric_value(url, "o1_waiting_for_room") == 3  # dashboards see the line too
    engine.release.set()
    clients.join()
    assert all(answer.status_code == 200 for answer in clients.answers.values()), clients.answers
    order = [text for text in engine.computed if text in "abcdef"]
    assert order == list("abcdef"), order


@pytest.mark.parametrize("held", [1.5], indirect=True)
def test_a_request_waits_for_room_a_bounded_time_then_gets_429(held):
    """A request that finds no room waits --queue-wait seconds, then gets a 429 with Retry-After; it leaves the line,
    so the request behind it, which fits, gets in. With the line itself full, a 429 comes at once."""
    url, engine, clients = held
    started = time.monotonic()
    clients.send(["d", "e"])
    _until(lambda: _health(url)["waiting_for_room"] == 2)
    full = httpx.post(url + "/v1/embeddings", json=DOCS | {"input": ["g", "h", "i"]})  # 2 waiting + 3 > 4: no wait
    assert full.status_code == 429 and full.headers["retry-after"] == "1", full.text
    assert "--max-queue" in full.json()["error"]["message"]
    clients.threads[-1].join(30)
    waited = time.monotonic() - started
    refused = clients.answers["d"]
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1", refused.text
    assert "--queue-wait" in refused.json()["error"]["message"]
    assert 1.4 < waited < 10, waited
    clients.send(["f"])  # the line is empty again: a request that fits is queued at once
    _until(lambda: _health(url)["queue_depth"] == 4 and _health(url)["waiting_for_room"] == 0)


def test_a_client_that_leaves_the_line_gives_its_place_up(held):
    """A client that gave up while waiting for room kept its place until its wait ran out: the requests behind it
    waited for a request nobody would read. Its place now goes at once to the next in line."""
    url, engine, clients = held
    started = time.monotonic()
    clients.send(["d", "e"], timeout=2)  # gives up long before --queue-wait
    _until(lambda: _health(url)["waiting_for_room"] == 2)
    clients.send(["f"])
    _until(lambda: "d" in clients.answers)
    _until(lambda: _health(url)["waiting_for_room"] == 0 and _health(url)["queue_depth"] == 4,
           "the request behind the one that left never got its room")
    assert time.monotonic() - started < 30  # at its client's 2 s, not at the end of its 60 s --queue-wait
    engine.release.set()
    clients.join()
    assert clients.answers["f"].status_code == 200
    assert "d" not in engine.computed


def test_a_nan_vector_is_an_engine_error_in_base64_too(serve, tiny_o1_dir):
    """A model that overflowed was refused (500) for encoding_format=float, but base64, which the openai client asks
    for by default, answered 200 with the NaN floats: the same request stored NaN embeddings or failed depending on
    the client. Both formats now get the 500 naming the input."""
    openai = pytest.importorskip("openai")
    import torch

    from o1_retriever import O1Embedder
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     max_new_tokens=4)
    with serve(emb, name="tiny") as (url, _):
        with torch.no_grad():
            emb.encoder.model.get_input_embeddings().weight.fill_(float("nan"))
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError, match="NaN or infinite values for input"):
            client.embeddings.create(model="tiny-document", input=["a text"])  # base64 on the wire


@pytest.mark.parametrize("given, message", [([True], "input[0] must be a str, got bool"),
                                            ([["a text"]], "input[0] must be a str, got list")])
def test_input_that_is_not_token_ids_is_not_called_token_ids(server, given, message):
    """`[true]` or a list of lists of text was refused as "token-id input is not supported", which sent the user to
    their client's tokenizer settings; the refusal now names the item and its type."""
    url, _ = server
    answer = httpx.post(url + "/v1/embeddings", json={"model": "tiny-document", "input": given})
    assert answer.status_code == 400 and message in answer.json()["error"]["message"], answer.text
    tokens = httpx.post(url + "/v1/embeddings", json={"model": "tiny-document", "input": [[1, 2], [3]]})
    assert tokens.status_code == 400 and "token-id input" in tokens.json()["error"]["message"]


def test_queueing_a_request_costs_the_same_with_a_long_queue(served_embedder):
    """Each queued request summed every queued job to set the depth gauge (and admission read it again): with
    thousands of small requests waiting, each new one cost a pass over the queue, and filling it took quadratic
    time on the event loop that also answers /health. The depth is now kept as jobs come and go."""
    import asyncio

    from o1_retriever.server.batching import Batcher
    from o1_retriever.server.metrics import Metrics
    engine = Gated(served_embedder)

    async def scenario() -> float:
        batcher = Batcher(engine, max_wait_ms=0, metrics=Metrics())
        await batcher.start()
        held = asyncio.ensure_future(batcher.submit("document", ["hold"]))
        while "hold" not in engine.computed:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        jobs = [asyncio.ensure_future(batcher.submit("document", [f"t{i}"])) for i in range(20_000)]
        while batcher.depth < len(jobs):
            await asyncio.sleep(0)
        took = time.perf_counter() - started
        for job in jobs:
            job.cancel()
        await asyncio.sleep(0.05)
        assert batcher.depth == 0  # cancelled jobs leave the count
        engine.release.set()
        await held
        await batcher.stop()
        return took

    took = asyncio.run(scenario())
    assert took < 5, f"queueing 20000 one-text requests took {took:.1f} s"  # a pass over the queue each: minutes


@pytest.mark.parametrize("value", ["-1", "soon", "inf"])
def test_a_queue_wait_that_is_no_number_of_seconds_is_refused_naming_it(value, capsys):
    from o1_retriever.cli import main
    with pytest.raises(SystemExit):
        main(["serve", "--queue-wait", value])
    assert f"--queue-wait: a number of seconds >= 0, got {value!r}" in capsys.readouterr().err
