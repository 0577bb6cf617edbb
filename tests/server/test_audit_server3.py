"""Audit of `o1-retriever serve` as an embedding-server user meets it: shutdown that outlasts --graceful-timeout,
`usage` for the default model's ensemble encoder, bodies sent the wrong way, and RemoteEmbedder pointed at a server
that is not o1-retriever."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.fixtures import Gated, tiny_composite

from o1_retriever.server import BackgroundServer, O1ServerError, RemoteEmbedder
from o1_retriever.server.batching import Batcher, ShuttingDown


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.01)


def test_requests_cut_off_by_the_graceful_timeout_get_a_503_in_the_api_shape(served_embedder):
    """A request still running when --graceful-timeout runs out was answered with uvicorn's plain-text
    `500 Internal Server Error` (and a traceback per request in the log): clients saw a server fault, not a
    shutdown they can retry."""
    engine = Gated(served_embedder)
    server = BackgroundServer(engine, name="tiny", max_wait_ms=0, graceful_timeout=0.5).start()
    answers = {}

    def post(text):
        answers[text] = httpx.post(server.url + "/v1/embeddings", timeout=30,
                                   json={"input": text, "model": "tiny-document"})

    clients = [threading.Thread(target=post, args=(text,)) for text in ("hold", "queued")]
    clients[0].start()
    _wait_for(lambda: "hold" in engine.computed)  # the engine is busy with "hold"
    clients[1].start()
    _wait_for(lambda: httpx.get(server.url + "/health").json()["queue_depth"] > 0)  # "queued" waits behind it
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    for client in clients:
        client.join(30)
    engine.release.set()
    stopper.join(30)
    assert not stopper.is_alive()
    for text in ("hold", "queued"):
        r = answers[text]
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "server_shutting_down" and "--graceful-timeout" in error["message"]
        assert error["type"] == "server_error"
    assert engine.computed == ["hold"]  # the queued request was never computed


def test_a_stopped_batcher_fails_work_it_had_taken_instead_of_leaving_it_waiting(served_embedder):
    """stop() failed only the jobs still in the queue: one gathering company for its batch, or in the engine, was
    never answered, and its request waited forever (under an ASGI server that stops the app while requests run)."""
    engine = Gated(served_embedder)

    async def scenario():
        gathering = Batcher(served_embedder, max_wait_ms=60_000)  # a lone job waits a minute for company
        await gathering.start()
        waiting = asyncio.ensure_future(gathering.submit("document", ["alone"]))
        await asyncio.sleep(0.1)
        await gathering.stop()
        with pytest.raises(ShuttingDown, match="shutting down"):
            await asyncio.wait_for(waiting, 5)

        running = Batcher(engine, max_wait_ms=0)
        await running.start()
        busy = asyncio.ensure_future(running.submit("document", ["hold"]))
        for _ in range(3000):
            if "hold" in engine.computed:
                break
            await asyncio.sleep(0.01)
        threading.Timer(0.3, engine.release.set).start()  # the engine call ends after stop() began
        await running.stop()
        with pytest.raises(ShuttingDown):
            await asyncio.wait_for(busy, 5)

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def ensemble_embedder(tmp_path_factory, tiny_o1_dir):
    return tiny_composite(tmp_path_factory.mktemp("ensemble"), tiny_o1_dir, seeds=(0, 1))


def test_usage_counts_the_input_tokens_for_an_ensemble_encoder(serve, ensemble_embedder):
    """The default model's encoder is an ensemble: `usage` read no tokenizer from it and said 0 tokens for every
    request (clients that meter or budget by usage saw free, empty requests)."""
    tokenizer = ensemble_embedder.encoder.members[0].model.tokenizer
    texts = ["why does bread rise?", "yeast makes gas in the dough"]
    want = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    with serve(ensemble_embedder, name="ens") as (url, _):
        for model in ("ens-document", "ens-query"):
            r = httpx.post(url + "/v1/embeddings", json={"model": model, "input": texts, "k": None}, timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["usage"] == {"prompt_tokens": want, "total_tokens": want}


def test_a_body_sent_the_wrong_way_says_how_to_send_it(server):
    """requests' `data=json.dumps(body)` sends no Content-Type: the answer was `body: Input should be a valid
    dictionary or object to extract fields from`; a JSON array or an empty body got the same words."""
    url, _ = server
    body = json.dumps({"input": "x", "model": "tiny-document"}).encode()
    r = httpx.post(url + "/v1/embeddings", content=body)  # no content-type at all
    assert r.status_code == 415, r.text
    assert "came without one" in r.json()["error"]["message"] and "requests: json=body" in r.json()["error"]["message"]
    json_type = {"content-type": "application/json"}
    for sent, got in ((b'["x"]', "got a JSON list"), (b'"x"', "got a JSON str"), (b"", "got an empty body")):
        r = httpx.post(url + "/v1/embeddings", content=sent, headers=json_type)
        assert r.status_code == 400 and "the body must be a JSON object" in r.json()["error"]["message"], r.text
        assert got in r.json()["error"]["message"]


def test_an_unknown_field_on_think_lists_thinks_own_fields(server):
    """/v1/think refused `encoding_format` as not permitted, then listed it among the allowed fields (the
    embeddings route's list)."""
    url, _ = server
    r = httpx.post(url + "/v1/think", json={"input": "x", "encoding_format": "base64"})
    message = r.json()["error"]["message"]
    assert r.status_code == 400 and message.endswith("allowed: input, model, k, user"), message


@pytest.fixture
def other_server():
    """A real HTTP server that is not o1-retriever: `answer` is what it sends, 200, to every GET and POST."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body, content_type = self.server.answer
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield http, f"http://127.0.0.1:{http.server_address[1]}"
    http.shutdown()
    http.server_close()


@pytest.mark.parametrize("answer, says", [
    ((b"<html>a dashboard</html>", "text/html"), "the answer is not a JSON object (text/html"),
    ((b"", "text/plain"), "the answer is not a JSON object (text/plain"),  # TEI's /health
    ((b'{"unix": 1.0}', "application/json"), "the answer has no name, fingerprint, dim"),  # Infinity's /health
])
def test_remote_embedder_pointed_at_another_server_names_it(other_server, answer, says):
    """Another server on the port (TEI, Infinity, a dashboard) raised a bare `JSONDecodeError: Expecting value` or
    `KeyError: 'name'`, naming neither the URL nor what was wrong."""
    http, url = other_server
    http.answer = answer
    for call in (lambda remote: remote.encode_documents("x"), lambda remote: remote.dim):
        with pytest.raises(O1ServerError) as caught:
            call(RemoteEmbedder(url, retries=0))
        assert url in str(caught.value) and says in str(caught.value)
        assert "is this an o1-retriever server?" in str(caught.value)
    if answer[1] == "text/html":  # the embeddings route itself, with a served name given (no /health read)
        with pytest.raises(O1ServerError, match="/v1/embeddings.*not a JSON object"):
            RemoteEmbedder(url, model="m").encode_documents(["x"])


def test_serve_finds_a_taken_port_before_it_loads_the_model(capsys):
    """uvicorn binds only after the model has loaded and warmed up: a taken port failed only after the load. The
    model path here does not exist, so an error about it means the model was looked at first."""
    import socket

    from o1_retriever.cli import main
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", "/no/such/model", "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in error and "--port" in error and "/no/such/model" not in error
    with pytest.raises(SystemExit):  # the OS would silently wrap 70000 to port 4464
        main(["serve", "--model", "/no/such/model", "--port", "70000"])
    assert "a TCP port is 0 to 65535, got '70000'" in capsys.readouterr().err


def _ipv6() -> bool:
    import socket
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6(), reason="this machine has no IPv6")
def test_the_address_check_binds_as_uvicorn_does():
    """`serve --host ::` was refused ("Address already in use") when another server held the port on 0.0.0.0 only:
    the check bound '::' dual-stack, while uvicorn (asyncio's create_server) binds it v6-only and starts."""
    import socket

    from o1_retriever.server.cli import _check_listenable

    async def uvicorn_would_bind(host, port):
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, host=host, port=port)
        server.close()
        await server.wait_closed()

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        asyncio.run(uvicorn_would_bind("::", port))  # the reference: the server itself would start
        _check_listenable("::", port)
        with pytest.raises(ValueError, match=f"cannot listen on 0.0.0.0:{port}"):
            _check_listenable("0.0.0.0", port)
