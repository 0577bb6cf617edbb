"""Bad requests get the right status and a clear OpenAI-style error, and the server keeps serving."""
from __future__ import annotations

import httpx
import pytest

from o1_retriever.server.app import Limits

GOOD = {"input": "protein cell", "model": "tiny-query"}


@pytest.mark.parametrize("body, status, says", [
    ({"input": 5, "model": "tiny-query"}, 400, "input must be a str or a list of str, got int"),
    ({"input": ["ok", 3]}, 400, "input[1] must be a str, got int"),
    ({"input": ["ok", "  "]}, 400, "input[1] is empty"),
    ({"input": []}, 400, "empty list"),
    ({"input": [[1, 2], [3]]}, 400, "token-id input is not supported"),
    ({"input": "x", "model": "gpt-4"}, 404, "model='gpt-4' is not served here; use one of ['tiny-query', 'tiny-document']"),
    ({"input": "x", "k": 65}, 400, "k must be an int from 0 (no thinking) to 64, got 65"),
    ({"input": "x", "k": -1}, 400, "got -1"),
    ({"input": "x", "k": "3"}, 400, "k: Input should be a valid integer"),
    ({"input": "x", "model": "tiny-document", "k": 2}, 400, "k applies to queries only"),
    ({"input": "x", "model": "tiny-document", "input_type": "query"}, 400, "contradicts"),
    ({"input": "x", "dimensions": 12}, 400, "this model embeds into 64 dimensions"),
    ({"input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
    ({"input": "x", "inptu_type": "query"}, 400, "Extra inputs are not permitted; allowed: input, model"),
])
def test_bad_embedding_requests_get_400_with_a_clear_message(server, body, status, says):
    url, _ = server
    r = httpx.post(url + "/v1/embeddings", json=body, timeout=60)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert says in error["message"] and error["type"] == "invalid_request_error"
    assert httpx.post(url + "/v1/embeddings", json=GOOD, timeout=60).status_code == 200  # still serving


def test_malformed_json_is_400_and_unknown_routes_404(server):
    url, _ = server
    r = httpx.post(url + "/v1/embeddings", content=b'{"input": "x",', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    assert httpx.post(url + "/v1/think", json={"input": "x", "k": 100}).status_code == 400
    r = httpx.post(url + "/v1/embeddings", content=b'{"input": "\xff"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "UTF-8 encoded JSON" in r.json()["error"]["message"], r.text
    # `curl -d` sends a form content type: say what to send instead of a parse error
    r = httpx.post(url + "/v1/embeddings", content=b'{"input": "x"}',
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"]["message"], r.text
    r = httpx.get(url + "/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"  # as OpenAI answers


def test_too_many_inputs_or_characters_is_413(serve, served_embedder):
    with serve(served_embedder, name="tiny", limits=Limits(max_inputs=4, max_chars=100)) as (url, _):
        r = httpx.post(url + "/v1/embeddings", json={"input": ["a b"] * 5})
        assert r.status_code == 413 and "5 inputs in one request is over this server's limit of 4" in r.text
        r = httpx.post(url + "/v1/embeddings", json={"input": ["x" * 60, "y" * 60]})
        assert r.status_code == 413 and "120 characters" in r.text
        r = httpx.post(url + "/v1/embeddings", json={"input": "z" * 100_000})  # refused from Content-Length
        assert r.status_code == 413 and "bytes" in r.text
        assert httpx.post(url + "/v1/embeddings", json={"input": ["a b"] * 4}).status_code == 200


def test_a_chunked_body_without_content_length_is_capped_while_read(serve, served_embedder):
    """A streamed upload has no Content-Length to refuse it by: the server stops reading at its byte cap instead of
    buffering and parsing the whole body (a client streaming gigabytes would otherwise take the server's memory)."""
    def upload(megabytes):  # a generator body: httpx sends it chunked, with no Content-Length
        yield b'{"model": "tiny-document", "input": "'
        for _ in range(megabytes * 16):
            yield b"x" * 65536
        yield b'"}'

    with serve(served_embedder, name="tiny", limits=Limits(max_chars=100)) as (url, _):
        r = httpx.post(url + "/v1/embeddings", content=upload(1), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "bytes" in r.json()["error"]["message"], r.text
        parts = [b'{"input": "fine", ', b'"model": "tiny-document"}']
        streamed = httpx.post(url + "/v1/embeddings", content=iter(parts), headers={"content-type": "application/json"})
        assert streamed.status_code == 200 and len(streamed.json()["data"][0]["embedding"]) == 64


def test_engine_failure_is_500_for_that_batch_and_the_server_keeps_serving(serve, served_embedder):
    class Flaky:
        def __getattr__(self, name):
            return getattr(served_embedder, name)

        def encode_documents(self, texts, **kw):
            if "boom" in texts:
                raise RuntimeError("simulated engine fault")
            return served_embedder.encode_documents(texts, **kw)

    with serve(Flaky(), name="tiny", max_wait_ms=0) as (url, _):
        r = httpx.post(url + "/v1/embeddings", json={"input": "boom", "model": "tiny-document"})
        assert r.status_code == 500 and "simulated engine fault" in r.json()["error"]["message"]
        assert httpx.post(url + "/v1/embeddings", json={"input": "fine", "model": "tiny-document"}).status_code == 200


def test_api_key_is_required_on_every_model_route(keyed_server, api_key):
    openai = pytest.importorskip("openai")
    url, _ = keyed_server
    assert httpx.post(url + "/v1/embeddings", json=GOOD).status_code == 401
    r = httpx.post(url + "/v1/embeddings", json=GOOD, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert "wrong API key" in r.json()["error"]["message"]
    # Checked before the body is read: a malformed body without a key is still a 401, not a 400.
    assert httpx.post(url + "/v1/embeddings", content=b"{").status_code == 401
    assert httpx.get(url + "/v1/models").status_code == 401
    assert httpx.post(url + "/embeddings", json=GOOD).status_code == 401  # the alias without /v1 too
    assert httpx.get(url + "/health").status_code == 200 and httpx.get(url + "/metrics").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).embeddings.create(**GOOD)
    got = openai.OpenAI(base_url=url + "/v1", api_key=api_key).embeddings.create(**GOOD)
    assert len(got.data[0].embedding) == 64
