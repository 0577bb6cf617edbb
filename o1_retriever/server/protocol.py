"""The OpenAI embeddings protocol as this server speaks it: request bodies, the error envelope
`{"error": {"message", "type", "param", "code"}}` (so clients print the message instead of a parse failure), and the
checks that turn a body's fields into engine work (which model, which texts, which k) or name what is wrong."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..validation import MAX_K, as_text_list, check_k
from .deps import require

fastapi = require("fastapi")
pydantic = require("pydantic")
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.routing import Match  # noqa: E402


@dataclass
class Limits:
    max_inputs: int = 2048  # OpenAI's own per-request limit; LangChain sends up to 1000 by default
    max_chars: int = 2_000_000  # total characters of text per request
    # Texts waiting for the engine past which a request is refused with a 429 (its client retries) instead of
    # queued for minutes: bounded memory, and a load balancer can send the work elsewhere.
    max_queue: int = 16_384
    # Seconds a request that finds no room waits in line for it (arrival order) before its 429.
    queue_wait: float = 30.0


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


def error_response(status: int, message: str, param=None, code=None, headers=None) -> JSONResponse:
    kind = {401: "authentication_error", 413: "request_too_large", 429: "rate_limit_error",
            500: "server_error", 503: "server_error"}.get(status, "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status,
                        headers=headers)


class _Body(BaseModel):
    # Unknown fields are refused: a typo such as `input_typ` would otherwise silently embed the wrong way.
    model_config = ConfigDict(extra="forbid")
    input: Any = None  # checked by hand below, for messages that name the bad item
    model: str | None = None
    k: StrictInt | None = None
    user: str | None = None


class EmbeddingRequest(_Body):
    encoding_format: Literal["float", "base64"] | None = None  # null as OpenAI takes it: float
    input_type: Literal["query", "document"] | None = None
    dimensions: StrictInt | None = None
    return_thoughts: StrictBool = False


class ThinkRequest(_Body):
    pass


def install_error_handlers(app) -> None:
    """Every error the app raises, or FastAPI raises for it, answered in the OpenAI shape."""
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(HTTPException, http_error)


async def api_error(request, e: ApiError) -> JSONResponse:
    return error_response(e.status, e.message, e.param, e.code, e.headers)


async def invalid_body(request, e: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors in the OpenAI shape, with a message that says what to send instead."""
    errors = e.errors()
    bad_json = [err for err in errors if err.get("type") == "json_invalid"]
    if bad_json:
        why = (bad_json[0].get("ctx") or {}).get("error") or bad_json[0].get("msg")
        return error_response(400, f"the request body is not valid JSON: {why}", code="json_invalid")
    fields = [".".join(str(p) for p in err.get("loc", ())[1:]) or None for err in errors]  # loc[0] is "body"
    content_type = request.headers.get("content-type", "")
    if fields[0] is None and "json" not in content_type:  # not parsed as JSON at all
        sent = f"as {content_type!r}" if content_type else "without one"  # requests' data=json.dumps(...)
        return error_response(415, f"the body must be a JSON object sent with `Content-Type: application/json` "
                                   f"(this one came {sent}; curl: add -H 'content-type: application/json'; requests: "
                                   "json=body)", code="unsupported_media_type")
    if fields[0] is None:  # JSON, but not an object
        got = "an empty body" if e.body in (None, b"", "") else f"a JSON {type(e.body).__name__}"
        return error_response(400, 'the body must be a JSON object such as {"model": ..., "input": ["a text"]}, '
                                   f"got {got}", code="invalid_value")
    message = "; ".join(f"{field or 'body'}: {err.get('msg')}" for field, err in zip(fields, errors))
    if errors[0].get("type") == "extra_forbidden":
        schema = ThinkRequest if request.url.path == "/v1/think" else EmbeddingRequest
        message += "; allowed: " + ", ".join(schema.model_fields)
    return error_response(400, message, fields[0], "invalid_value")


async def http_error(request, e: HTTPException) -> JSONResponse:
    if e.status_code == 400 and e.detail == "There was an error parsing the body":  # Starlette's, e.g. bad UTF-8
        return error_response(400, "the request body could not be read as JSON: send UTF-8 encoded JSON",
                              code="json_invalid")
    asked = f"{request.method} {request.url.path}"
    if e.status_code == 404:  # most often a base_url with /v1 missing or twice
        served = ", ".join(f"{method} {route.path}" for route in request.app.routes
                           if getattr(route, "include_in_schema", False) for method in sorted(route.methods))
        return error_response(404, f"{asked} is not served here; this server serves {served}", code="not_found")
    if e.status_code == 405:  # Starlette's Allow names the first route of the path only (GET and HEAD are two)
        allowed = ", ".join(sorted({method for route in request.app.routes if hasattr(route, "methods")
                                    and route.matches(request.scope)[0] != Match.NONE for method in route.methods}))
        return error_response(405, f"{asked} is not served here; use {allowed} {request.url.path}",
                              code="method_not_allowed", headers={"Allow": allowed})
    return error_response(e.status_code, str(e.detail), headers=e.headers)


def model_kind(model: str | None, input_type: str | None, name: str, ids: dict) -> str:
    """query or document from the model id (`-query` / `-document`, or the bare name plus input_type)."""
    if model is None or model == name:
        return input_type or "query"
    if model not in ids:
        raise ApiError(404, f"model={model!r} is not served here; use one of {list(ids)} "
                            f"(or {name!r} with input_type)", "model", "model_not_found")
    kind = ids[model]
    if input_type is not None and input_type != kind:
        raise ApiError(400, f"input_type={input_type!r} contradicts model={model!r}; drop one of them", "input_type")
    return kind


def _token_ids(value) -> bool:
    """A token id, or a list of them (what OpenAI's API also takes as input); True and False are no token ids."""
    if isinstance(value, list):
        return bool(value) and all(map(_token_ids, value)) and not any(isinstance(v, list) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def input_texts(value, limits: Limits) -> list[str]:
    if isinstance(value, list) and value and all(map(_token_ids, value)):
        raise ApiError(400, "token-id input is not supported: send text (LangChain's OpenAIEmbeddings: "
                            "check_embedding_ctx_length=False)", "input")
    if isinstance(value, list) and not value:
        raise ApiError(400, "input is an empty list; send at least one text", "input")
    try:
        texts, _ = as_text_list(value, "input")
    except (TypeError, ValueError) as e:
        raise ApiError(400, str(e), "input") from None
    if len(texts) > limits.max_inputs:
        raise ApiError(413, f"{len(texts)} inputs in one request is over this server's limit of "
                            f"{limits.max_inputs} (--max-inputs); split them into several requests", "input",
                       "too_large")
    chars = sum(map(len, texts))
    if chars > limits.max_chars:
        raise ApiError(413, f"{chars} characters in one request is over this server's limit of {limits.max_chars} "
                            "(--max-chars); split the input into several requests", "input", "too_large")
    return texts


def k_value(value, default: int) -> int:
    if value is None:
        return default
    try:
        return check_k(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"k must be an int from 0 (no thinking) to {MAX_K}, got {value!r}", "k") from None


def encode_vector(vec: np.ndarray, fmt: str | None):
    if fmt == "base64":  # what the openai client asks for by default: little-endian float32 bytes
        return base64.b64encode(np.ascontiguousarray(vec, dtype="<f4").tobytes()).decode("ascii")
    return vec.astype(np.float32).tolist()


def embeddings_json(vectors: np.ndarray, fmt: str | None, thoughts: list | None, model: str, tokens: int) -> bytes:
    """The /v1/embeddings answer as JSON, rendered one item at a time: in a worker thread, the event loop gets its
    turn between items instead of waiting out a whole answer (2048 float vectors of 1152 dimensions are 45 MB of
    JSON, seconds with the json module). orjson, where installed, writes the same text about 15x faster."""
    # In either format: JSON has no NaN (orjson would write null), and base64 (the openai client's default) would
    # hand the client NaN floats; either way a client would store it as an embedding.
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=-1))
    if bad.size:
        raise ApiError(500, f"the model produced a vector holding NaN or infinite values for input[{bad[0]}] "
                            f"({bad.size} of {len(vectors)} inputs), which is no embedding: a numeric overflow in the "
                            "model (serve it in fp32: --dtype fp32)", code="engine_error")
    dumps, as_floats = _dumps()
    items = []
    for i, vec in enumerate(vectors):
        vector = encode_vector(vec, fmt) if fmt == "base64" else as_floats(vec)
        item = {"object": "embedding", "index": i, "embedding": vector}
        if thoughts is not None:
            item["thoughts"] = thoughts[i]
        items.append(dumps(item))
    usage = dumps({"prompt_tokens": tokens, "total_tokens": tokens})
    return b'{"object":"list","data":[' + b",".join(items) + b'],"model":' + dumps(model) + b',"usage":' + usage + b"}"


def _dumps():
    """(dumps to bytes, a vector as dumps writes floats): orjson's, or the json module's."""
    try:
        import orjson
    except ImportError:
        import json

        def dumps(value) -> bytes:
            return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        return dumps, lambda vec: vec.astype(np.float32).tolist()
    # float32 widened to float64, as tolist() does: the same shortest round-trip digits as the json module
    return (lambda value: orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)), \
        (lambda vec: np.ascontiguousarray(vec, dtype=np.float64))
