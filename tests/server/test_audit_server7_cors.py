"""CORS: a web page calling the server from a browser (a preflight OPTIONS, then the request with an Origin)."""
from __future__ import annotations

import argparse

import httpx
import pytest

PAGE = "http://localhost:3000"
PREFLIGHT = {"Origin": PAGE, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, x-stainless-lang"}
BODY = {"model": "tiny-document", "input": ["a"]}


def test_a_browser_preflight_is_answered_without_the_key_and_the_request_still_needs_it(serve, served_embedder,
                                                                                         api_key):
    """A browser's preflight (OPTIONS, which never carries the key) got a 401, so no page could call the server, and
    there was no setting for allowed origins. --cors-allow-origin now lets the pages named call it: the preflight is
    answered without the key, the request itself still needs it, and its answers (401 and 429 too) are readable."""
    with serve(served_embedder, name="tiny", api_key=api_key, cors_origins=[PAGE]) as (url, _):
        preflight = httpx.options(url + "/v1/embeddings", headers=PREFLIGHT)
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == PAGE
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "x-stainless-lang" in allowed, allowed
        assert "access-control-allow-credentials" not in preflight.headers  # bearer keys, not cookies

        no_key = httpx.post(url + "/v1/embeddings", json=BODY, headers={"Origin": PAGE})
        assert no_key.status_code == 401 and no_key.headers["access-control-allow-origin"] == PAGE
        keyed = httpx.post(url + "/v1/embeddings", json=BODY,
                           headers={"Origin": PAGE, "Authorization": f"Bearer {api_key}"})
        assert keyed.status_code == 200, keyed.text
        assert keyed.headers["access-control-allow-origin"] == PAGE
        assert "retry-after" in keyed.headers["access-control-expose-headers"].lower()

        other = "http://evil.example"
        refused = httpx.options(url + "/v1/embeddings", headers=PREFLIGHT | {"Origin": other})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        answer = httpx.post(url + "/v1/embeddings", json=BODY,
                            headers={"Origin": other, "Authorization": f"Bearer {api_key}"})
        assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_without_the_flag_there_are_no_cors_headers(server):
    url, _ = server
    answer = httpx.post(url + "/v1/embeddings", json=BODY, headers={"Origin": PAGE})
    assert answer.status_code == 200 and not any(h.startswith("access-control-") for h in answer.headers)
    assert httpx.options(url + "/v1/embeddings", headers=PREFLIGHT).status_code == 405  # as before


def test_any_origin(serve, served_embedder):
    with serve(served_embedder, name="tiny", cors_origins="*") as (url, _):
        preflight = httpx.options(url + "/v1/embeddings", headers=PREFLIGHT | {"Origin": "https://app.example"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("bad", ["http://localhost:3000/", "localhost:3000", "ftp://host", "http://a.com,http://b.com",
                                 "http://host:99999", "http://host/path", "https://"])
def test_a_value_that_is_not_an_origin_is_refused_naming_it(bad, served_embedder):
    from o1_retriever.server.app import create_app
    from o1_retriever.server.cli import register
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--cors-allow-origin", bad])
    with pytest.raises(ValueError, match="is not an origin.*http://localhost:3000"):
        create_app(served_embedder, cors_origins=[bad])


def test_origins_from_the_command_line():
    from o1_retriever.server.cli import register
    from o1_retriever.server.cors import check_origins
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--cors-allow-origin", "HTTP://LocalHost:3000",
                              "--cors-allow-origin", "https://app.example"])
    assert args.cors_allow_origin == ["http://localhost:3000", "https://app.example"]
    assert parser.parse_args(["serve"]).cors_allow_origin == []
    with pytest.raises(ValueError, match=r"'\*' allows every origin, so give it alone"):
        check_origins(["*", PAGE])
