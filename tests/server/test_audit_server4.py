"""Audit of `o1-retriever serve` as a demanding user of an OpenAI-compatible embedding server meets it: inputs far
longer than the model reads (their cost and their `usage`)."""
from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from tests.fixtures import Gated, tiny_composite

# The engine says once that it cut an input to its window: these tests send such inputs on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Some inputs are longer than")

LONG = "Yeast makes gas and the bread rises. " * 50_000  # 1.85 million characters, 400k tokens


@pytest.fixture(scope="module")
def composite_embedder(tmp_path_factory, tiny_o1_dir):
    return tiny_composite(tmp_path_factory.mktemp("composite"), tiny_o1_dir)


def _embed(url: str, **body) -> dict:
    answer = httpx.post(url + "/v1/embeddings", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_usage_counts_the_tokens_the_model_reads_not_the_whole_input(server, served_embedder):
    """`usage` counted every token of the input, also the 400k the model never reads (its window is 512)."""
    url, _ = server
    tokenizer = served_embedder.encoder.tokenizer
    short = "why does bread rise?"
    assert _embed(url, model="tiny-document", input=short)["usage"]["prompt_tokens"] == \
        len(tokenizer(short, add_special_tokens=False)["input_ids"])
    for body in ({"model": "tiny-document"}, {"model": "tiny-query", "k": 0}):
        usage = _embed(url, input=LONG[:200_000], **body)["usage"]
        assert 0 < usage["prompt_tokens"] <= served_embedder.settings.document_max_length, (body, usage)
        assert usage["total_tokens"] == usage["prompt_tokens"]


def test_a_huge_input_costs_what_the_model_reads_of_it(server):
    """A 1.85-million-character input held the one engine thread for seconds (tokenized whole to count its usage,
    then again by the encoder, which keeps its first 512 tokens), so every other client waited behind it. The
    server now cuts each input to what the model reads before the engine sees it."""
    url, _ = server
    _embed(url, model="tiny-document", input="warm up")
    started = time.perf_counter()
    _embed(url, model="tiny-document", input=LONG)
    _embed(url, model="tiny-query", input=LONG, k=1)
    assert time.perf_counter() - started < 3.0  # tokenizing the whole text once takes seconds


def test_an_input_cut_to_what_the_model_reads_embeds_as_the_whole_one(server, served_embedder):
    """The cut keeps every token the model reads: a long document's vector is the one the engine gives the whole
    text in-process, and a long query thinks alike for /v1/think and /v1/embeddings."""
    url, _ = server
    text = LONG[:60_000]
    served = np.array(_embed(url, model="tiny-document", input=text)["data"][0]["embedding"], dtype=np.float32)
    np.testing.assert_allclose(served, served_embedder.encode_documents([text])[0], atol=1e-5)
    thought = httpx.post(url + "/v1/think", json={"input": text, "k": 2}, timeout=60).json()["data"][0]["thoughts"]
    embedded = _embed(url, model="tiny-query", input=text, k=2, return_thoughts=True)["data"][0]["thoughts"]
    assert thought == embedded


def test_a_sentence_transformers_encoder_reads_the_same_of_a_cut_input(serve, composite_embedder):
    """The cut and `usage` follow a sentence-transformers encoder's own window (max_seq_length) and tokenizer."""
    with serve(composite_embedder, name="st") as (url, _):
        text = LONG[:60_000]
        answer = _embed(url, model="st-document", input=text)
        np.testing.assert_allclose(answer["data"][0]["embedding"], composite_embedder.encode_documents([text])[0],
                                   atol=1e-5)
        assert answer["usage"]["prompt_tokens"] == 64 - 2  # max_seq_length, less [CLS] and [SEP]
        started = time.perf_counter()
        assert _embed(url, model="st-query", input=LONG, k=1)["usage"]["prompt_tokens"] == 62
        assert time.perf_counter() - started < 3.0


def test_an_input_whose_window_cannot_be_found_cheaply_is_refused_by_name(serve, composite_embedder):
    """Half a million characters without a space are one WordPiece token: only tokenizing all of it tells what the
    model reads, so the server refuses it with a 413 naming the input, in the OpenAI error shape."""
    with serve(composite_embedder, name="st") as (url, _):
        answer = httpx.post(url + "/v1/embeddings", timeout=60,
                            json={"model": "st-document", "input": ["why does bread rise?", "A" * 500_000]})
        assert answer.status_code == 413, answer.text
        error = answer.json()["error"]
        assert error["param"] == "input" and error["code"] == "too_large", error
        assert error["message"].startswith("input[1] has only 1 tokens in its first"), error
        assert _embed(url, model="st-document", input="why does bread rise?")["data"]  # still serving


def test_a_wrong_method_or_path_says_what_is_served(server):
    """A GET to /v1/embeddings answered `Method Not Allowed` without the `Allow` header HTTP requires of a 405, and
    a mistyped path (a base_url with /v1 twice) answered `Not Found`, naming neither the path nor what is served."""
    url, _ = server
    wrong_method = httpx.get(url + "/v1/embeddings")
    assert wrong_method.status_code == 405 and wrong_method.headers.get("allow") == "POST", wrong_method.headers
    message = wrong_method.json()["error"]["message"]
    assert "GET /v1/embeddings" in message and "POST" in message, message
    assert httpx.delete(url + "/health").headers.get("allow") == "GET, HEAD"  # two routes, one path
    wrong_path = httpx.post(url + "/v1/v1/embeddings", json={"input": "a"})
    assert wrong_path.status_code == 404, wrong_path.text
    message = wrong_path.json()["error"]["message"]
    assert "POST /v1/v1/embeddings" in message and "POST /v1/embeddings" in message, message


def _until(condition) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.01)


def test_a_full_queue_answers_429_and_remote_embedder_retries_it(served_embedder):
    """Requests queued without bound while the engine was busy: memory grew with every request, and clients waited
    minutes instead of being sent elsewhere. Past --max-queue texts a request now gets a 429 with Retry-After, which
    the openai client and RemoteEmbedder retry; an idle queue takes any request the size limits allow. (--queue-wait 0:
    no wait in line for room first, see test_audit_server5.)"""
    from o1_retriever.server import BackgroundServer, RemoteEmbedder
    from o1_retriever.server.app import Limits
    engine = Gated(served_embedder)
    server = BackgroundServer(engine, name="tiny", max_wait_ms=0, limits=Limits(max_queue=3, queue_wait=0)).start()
    try:
        docs = {"model": "tiny-document"}
        posts = [threading.Thread(target=httpx.post, args=(server.url + "/v1/embeddings",),
                                  kwargs={"json": docs | {"input": text}, "timeout": 60})
                 for text in (["hold"], ["a", "b"])]
        posts[0].start()
        _until(lambda: "hold" in engine.computed)  # the engine is busy
        posts[1].start()
        _until(lambda: httpx.get(server.url + "/health").json()["queue_depth"] == 2)
        assert httpx.get(server.url + "/health").json()["max_queue"] == 3
        refused = httpx.post(server.url + "/v1/embeddings", json=docs | {"input": ["c", "d"]})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1", refused.text
        error = refused.json()["error"]
        assert error["code"] == "server_overloaded" and "--max-queue" in error["message"], error
        threading.Timer(0.3, engine.release.set).start()
        vectors = RemoteEmbedder(server.url).encode_documents(["c", "d"])  # 429, then after 1 s answered
        np.testing.assert_allclose(vectors, served_embedder.encode_documents(["c", "d"]), atol=1e-5)
        for post in posts:
            post.join(60)
        many = ["x"] * 10  # more than --max-queue, but the queue is idle
        assert len(_embed(server.url, model="tiny-document", input=many)["data"]) == 10
    finally:
        engine.release.set()
        server.stop()


@pytest.fixture(scope="module")
def wide_embedder(composite_embedder):
    """The composite with a Dense layer widening its vectors to 2048 dimensions: float answers of megabytes."""
    from sentence_transformers import SentenceTransformer, models
    encoder = composite_embedder.encoder.model
    wide = SentenceTransformer(modules=[encoder[0], encoder[1], models.Dense(32, 2048)], device="cpu")
    from o1_retriever import O1Embedder
    from o1_retriever.encoding import SentenceEncoder
    return O1Embedder(composite_embedder.thinker, SentenceEncoder(wide), name="wide",
                      settings=composite_embedder.settings, thought_cache=False)


def test_a_large_float_answer_does_not_stop_the_server_answering_others(serve, wide_embedder):
    """An answer of 1024 float vectors of 2048 dimensions was rendered to JSON on the event loop: for seconds no
    other request got an answer, not even /health (a liveness probe with a 1 s timeout restarts such a server).
    It is now rendered in a thread, one item at a time."""
    with serve(wide_embedder, name="wide") as (url, _):
        texts = [f"text {i}" for i in range(1024)]
        body = {"model": "wide-document", "input": texts, "encoding_format": "float"}
        done, size = threading.Event(), []

        def big_request():
            with httpx.stream("POST", url + "/v1/embeddings", json=body, timeout=120) as answer:
                size.append(sum(len(chunk) for chunk in answer.iter_bytes()))  # read, not parsed: no GIL held
            done.set()

        threading.Thread(target=big_request).start()
        slowest = 0.0
        while not done.is_set():
            started = time.perf_counter()
            assert httpx.get(url + "/health", timeout=30).status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
        assert size and size[0] > 1024 * 2048 * 5, size
        assert slowest < 1.0, slowest
        answer = _embed(url, model="wide-document", input=texts[:2], encoding_format="float")
        np.testing.assert_allclose(np.array([d["embedding"] for d in answer["data"]]),
                                   wide_embedder.encode_documents(texts[:2]), atol=1e-6)


def test_a_long_input_to_an_encoder_without_a_window_gets_the_engine_s_own_answer(serve, composite_embedder):
    """A sentence-transformers model whose max_seq_length is None: the cut compared None with a token count, and a
    long input got a plain-text `Internal Server Error` instead of the answer a short one gets (here the engine's
    own failure, in the OpenAI shape). A reader without a window is now left to the engine: no cut."""
    model = composite_embedder.encoder.model
    saved, model.max_seq_length = model.max_seq_length, None
    try:
        with serve(composite_embedder, name="st") as (url, _):
            short, long = (httpx.post(url + "/v1/embeddings", json={"model": "st-document", "input": text}, timeout=60)
                           for text in ("why does bread rise?", LONG[:60_000]))
            assert long.status_code == short.status_code, long.text
            assert long.headers["content-type"] == short.headers["content-type"] == "application/json", long.text
            assert long.json()["error"]["code"] == short.json()["error"]["code"]
    finally:
        model.max_seq_length = saved


def test_a_non_finite_vector_is_an_engine_error_not_a_null_embedding(serve, tiny_o1_dir):
    """A model that overflowed (NaN vectors) was answered 200 with `null` in place of each NaN (orjson writes NaN so),
    which clients stored as an embedding; it is now a 500 in the API's shape naming the input, as the json module's
    refusal of NaN was (a plain-text one) before the answer was rendered by hand. base64 too: see
    test_audit_server5."""
    import torch

    from o1_retriever import O1Embedder
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     max_new_tokens=4)
    with serve(emb, name="tiny") as (url, _):
        with torch.no_grad():
            emb.encoder.model.get_input_embeddings().weight.fill_(float("nan"))
        body = {"model": "tiny-document", "input": ["a text", "another"]}
        answer = httpx.post(url + "/v1/embeddings", json=body, timeout=60)
        assert answer.status_code == 500, answer.text
        error = answer.json()["error"]
        assert error["code"] == "engine_error" and "input[0]" in error["message"] and "NaN" in error["message"]
        encoded = httpx.post(url + "/v1/embeddings", json=body | {"encoding_format": "base64"}, timeout=60)
        assert encoded.status_code == 500 and encoded.json()["error"]["code"] == "engine_error", encoded.text
