"""The HTTP app: OpenAI-compatible /v1/embeddings, /v1/think, /v1/models, /health and /metrics.

Two model ids route a text: `<name>-query` thinks k times before it embeds, `<name>-document` embeds directly
(most clients can only choose a model id, not send a flag). Errors use the OpenAI envelope
`{"error": {"message", "type", "param", "code"}}` so clients print the message instead of a parse failure.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..validation import MAX_K, as_text_list, check_k
from .batching import Batcher, Result, ShuttingDown
from .deps import require
from .metrics import Metrics
from .window import InputTooLong

fastapi = require("fastapi")
pydantic = require("pydantic")
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

BODY_OVERHEAD = 64 * 1024  # JSON punctuation and escapes on top of the text itself
# nginx's "client closed request": the status /metrics records for a request whose client left before its answer.
CLIENT_GONE = 499


@dataclass
class Limits:
    max_inputs: int = 2048  # OpenAI's own per-request limit; LangChain sends up to 1000 by default
    max_chars: int = 2_000_000  # total characters of text per request


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def _error(status: int, message: str, param=None, code=None) -> JSONResponse:
    kind = {401: "authentication_error", 413: "request_too_large",
            500: "server_error", 503: "server_error"}.get(status, "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


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


def default_name(embedder) -> str:
    """The served name: the model's own name, or its directory's for a path."""
    name = str(embedder.name)
    return Path(name).name if ("/" in name or "\\" in name) else name


def create_app(embedder, *, name: str | None = None, api_key: str | None = None, k: int = 3,
               max_batch: int = 32, max_wait_ms: float = 5.0, limits: Limits | None = None) -> "FastAPI":
    """An app serving one loaded O1Embedder. Requests are merged by a Batcher started in the app's lifespan."""
    check_k(k)
    name = name or default_name(embedder)
    ids = {f"{name}-query": "query", f"{name}-document": "document"}
    limits = limits or Limits()
    metrics = Metrics()
    batcher = Batcher(embedder, max_batch=max_batch, max_wait_ms=max_wait_ms, metrics=metrics)
    key = api_key.encode() if api_key else None

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()  # uvicorn runs this after in-flight requests have finished (SIGTERM drains)

    app = FastAPI(title="o1-retriever", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.batcher, app.state.metrics, app.state.model_ids = batcher, metrics, list(ids)
    app.add_middleware(_Guard, key=key, limits=limits, metrics=metrics)

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return _error(e.status, e.message, e.param, e.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e: RequestValidationError):
        errors = e.errors()
        bad_json = [err for err in errors if err.get("type") == "json_invalid"]
        if bad_json:
            why = (bad_json[0].get("ctx") or {}).get("error") or bad_json[0].get("msg")
            return _error(400, f"the request body is not valid JSON: {why}", code="json_invalid")
        fields = [".".join(str(p) for p in err.get("loc", ())[1:]) or None for err in errors]  # loc[0] is "body"
        content_type = request.headers.get("content-type", "")
        if fields[0] is None and "json" not in content_type:  # not parsed as JSON at all
            sent = f"as {content_type!r}" if content_type else "without one"  # requests' data=json.dumps(...)
            return _error(415, f"the body must be a JSON object sent with `Content-Type: application/json` (this one "
                               f"came {sent}; curl: add -H 'content-type: application/json'; requests: json=body)",
                          code="unsupported_media_type")
        if fields[0] is None:  # JSON, but not an object
            got = "an empty body" if e.body in (None, b"", "") else f"a JSON {type(e.body).__name__}"
            return _error(400, f'the body must be a JSON object such as {{"model": ..., "input": ["a text"]}}, got '
                               f"{got}", code="invalid_value")
        message = "; ".join(f"{field or 'body'}: {err.get('msg')}" for field, err in zip(fields, errors))
        if errors[0].get("type") == "extra_forbidden":
            schema = ThinkRequest if request.url.path == "/v1/think" else EmbeddingRequest
            message += "; allowed: " + ", ".join(schema.model_fields)
        return _error(400, message, fields[0], "invalid_value")

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):
        if e.status_code == 400 and e.detail == "There was an error parsing the body":  # Starlette's, e.g. bad UTF-8
            return _error(400, "the request body could not be read as JSON: send UTF-8 encoded JSON",
                          code="json_invalid")
        return _error(e.status_code, str(e.detail))

    @app.post("/v1/embeddings")
    @app.post("/embeddings", include_in_schema=False)  # clients configured without /v1 (Infinity's layout)
    async def embeddings(body: EmbeddingRequest, request: Request):
        kind = _kind(body.model, body.input_type, name, ids)
        texts = _texts(body.input, limits)
        if body.dimensions is not None and body.dimensions != embedder.dim:
            raise ApiError(400, f"dimensions={body.dimensions} is not available: this model embeds into "
                                f"{embedder.dim} dimensions (leave `dimensions` out)", "dimensions")
        if kind == "document" and (body.k is not None or body.return_thoughts):
            field = "k" if body.k is not None else "return_thoughts"
            raise ApiError(400, f"{field} applies to queries only: {name}-document embeds without thinking "
                                f"(use model {name}-query)", field)
        kq = _k(body.k, k) if kind == "query" else 0
        metrics.inputs.labels(kind).inc(len(texts))
        texts = await _read_window(batcher, kind, texts)
        result = await _submit(request, batcher, kind, texts, kq)
        if result is None:
            return Response(status_code=CLIENT_GONE)
        data = [{"object": "embedding", "index": i, "embedding": _encode(vec, body.encoding_format)}
                for i, vec in enumerate(result.embeddings)]
        if body.return_thoughts:
            for item, thoughts in zip(data, result.thoughts):
                item["thoughts"] = thoughts
        used = sum(result.tokens)
        # A JSONResponse as is: FastAPI would otherwise walk every float through jsonable_encoder first.
        return JSONResponse({"object": "list", "data": data, "model": f"{name}-{kind}",
                             "usage": {"prompt_tokens": used, "total_tokens": used}})

    @app.post("/v1/think")
    async def think(body: ThinkRequest, request: Request):
        if body.model is not None and _kind(body.model, None, name, ids) != "query":
            raise ApiError(400, f"model={body.model!r} does not think; use {name}-query or leave model out", "model")
        texts = _texts(body.input, limits)
        kq = _k(body.k, k)
        metrics.inputs.labels("think").inc(len(texts))
        texts = await _read_window(batcher, "think", texts)
        result = await _submit(request, batcher, "think", texts, kq)
        if result is None:
            return Response(status_code=CLIENT_GONE)
        return {"object": "list", "model": f"{name}-query", "k": kq,
                "data": [{"object": "thoughts", "index": i, "thoughts": t} for i, t in enumerate(result.thoughts)]}

    def model_card(model_id: str) -> dict:
        return {"id": model_id, "object": "model", "created": 0, "owned_by": "o1-retriever"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card(i) for i in ids]}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str):  # what `client.models.retrieve(id)` asks, e.g. to check a configured id
        if model_id not in ids:
            raise ApiError(404, f"model={model_id!r} is not served here; use one of {list(ids)}", "model",
                           "model_not_found")
        return model_card(model_id)

    @app.get("/health")
    @app.head("/health", include_in_schema=False)  # uptime checkers that read only the status
    async def health():
        param = next(embedder.encoder.model.parameters())
        return {"status": "ok", "model_loaded": True, "name": name, "model": str(embedder.name),
                "model_ids": list(ids), "fingerprint": embedder.fingerprint, "device": str(param.device),
                "dtype": str(param.dtype).removeprefix("torch."), "dim": embedder.dim, "backend": embedder.backend,
                "k": k, "queue_depth": batcher.depth, "max_batch": max_batch, "max_wait_ms": max_wait_ms}

    @app.get("/metrics")
    async def prometheus():
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    return app


ROUTES = ("/v1/embeddings", "/v1/think", "/v1/models", "/health", "/metrics")  # /v1/models/ID counts as other
ALIASES = {"/embeddings": "/v1/embeddings"}  # counted under the route they serve
OPEN = ("/health", "/metrics", "/docs", "/openapi.json")  # no key needed: probes, scrapers, the API's description


class _Guard:
    """API key and body size checks before a request reaches its route, then request count and latency per route.
    A plain ASGI middleware: FastAPI's `@app.middleware("http")` streams every response through an extra task."""

    def __init__(self, app, *, key: bytes | None, limits: Limits, metrics: Metrics):
        self.app, self.key, self.limits, self.metrics = app, key, limits, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, request = time.perf_counter(), Request(scope)
        path = ALIASES.get(scope["path"], scope["path"])
        route = path if path in ROUTES else "other"  # unknown paths share one label
        status = []

        async def send_status(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        # A refusal (401, 413) answers in the app's place.
        answer = _authorize(request, self.key) or _check_size(request, self.limits)
        if answer is None and "content-length" not in request.headers:  # streamed (chunked): cap it while read
            receive = await _read_capped(receive, _byte_cap(self.limits))
            answer = None if receive else _too_large("a streamed request body", self.limits)
        answer = answer or self.app
        try:
            await answer(scope, receive, send_status)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when --graceful-timeout runs out: answer them in the API's
            # shape (a 503 clients retry) instead of its plain-text 500 and a traceback per request.
            if status:  # the answer had started: the connection just closes
                raise
            await _error(503, "the server shut down before this request finished (it was still running when "
                              "--graceful-timeout ran out); send it again once the server is back",
                         code="server_shutting_down")(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(route, str(status[0] if status else 500)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def _authorize(request: Request, key: bytes | None) -> JSONResponse | None:
    """Every route but those in OPEN needs `Authorization: Bearer KEY` when the server has a key (an alias too).
    Compared in constant time: the response time says nothing about the key."""
    if key is None or request.url.path in OPEN:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key):
        what = "missing" if not header else "wrong"
        return _error(401, f"{what} API key: send the server's key as `Authorization: Bearer KEY`",
                      code="invalid_api_key")
    return None


def _byte_cap(limits: Limits) -> int:
    """Each character takes up to 6 bytes as a JSON escape; the exact character count is checked once parsed."""
    return limits.max_chars * 6 + BODY_OVERHEAD


def _too_large(what: str, limits: Limits) -> JSONResponse:
    return _error(413, f"{what} is over this server's limit of {_byte_cap(limits)} bytes (--max-chars "
                       f"{limits.max_chars}); split the input into several requests", code="too_large")


def _check_size(request: Request, limits: Limits) -> JSONResponse | None:
    """Refuse an oversized body from its Content-Length, before reading it."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > _byte_cap(limits):
        return _too_large(f"request body of {size} bytes", limits)
    return None


async def _read_capped(receive, cap: int):
    """Read a body that came without a Content-Length, stopping once it passes `cap` bytes (None then): the app
    would otherwise buffer all of it before any check. Returns a receive that replays what was read."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if size > cap:
            return None
        if message["type"] != "http.request" or not message.get("more_body"):
            break

    async def replay():
        return messages.pop(0) if messages else await receive()
    return replay


async def _submit(request: Request, batcher: Batcher, kind: str, texts: list[str], k: int):
    """The result for `texts`, or None when the client disconnected first: its jobs are then cancelled, so work
    still queued is never computed (a timed-out client that retries would otherwise queue its work twice). A
    request is queued in jobs of --max-batch texts, so a large one stops at the next engine call, not at its end.
    An engine failure fails the requests of its batch with a 500 that names it; the server keeps serving."""
    size = batcher.max_batch
    jobs = [asyncio.ensure_future(batcher.submit(kind, texts[i:i + size], k)) for i in range(0, len(texts), size)]
    work, gone = asyncio.gather(*jobs), asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if work.cancel():  # the client left, or this handler was cancelled: no slice is needed
            # gather() ends with a CancelledError that nobody awaits: retrieve it, or asyncio logs it as an error
            work.add_done_callback(lambda f: f.cancelled() or f.exception())
        for job in jobs:  # a slice failed: the rest are not needed either
            job.cancel()
    if not work.done():
        return None
    try:
        return Result.join(work.result())
    except ShuttingDown as e:
        raise ApiError(503, f"{e}: send the request again once the server is back", code="server_shutting_down") \
            from e
    except Exception as e:
        raise ApiError(500, f"the engine failed on this batch: {type(e).__name__}: {e}", code="engine_error") from e


async def _read_window(batcher: Batcher, kind: str, texts: list[str]) -> list[str]:
    """Texts cut to what the model reads, so that a huge one costs what its window costs (see window.py)."""
    try:
        return await batcher.read_window(kind, texts)
    except InputTooLong as e:
        raise ApiError(413, str(e), "input", "too_large") from None
    except ShuttingDown as e:
        raise ApiError(503, f"{e}: send the request again once the server is back", code="server_shutting_down") \
            from e


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection. The body is already read, so the server's next message is
    the disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _kind(model: str | None, input_type: str | None, name: str, ids: dict) -> str:
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


def _texts(value, limits: Limits) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(v, (int, list)) for v in value):
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


def _k(value, default: int) -> int:
    if value is None:
        return default
    try:
        return check_k(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"k must be an int from 0 (no thinking) to {MAX_K}, got {value!r}", "k") from None


def _encode(vec: np.ndarray, fmt: str | None):
    if fmt == "base64":  # what the openai client asks for by default: little-endian float32 bytes
        return base64.b64encode(np.ascontiguousarray(vec, dtype="<f4").tobytes()).decode("ascii")
    return vec.astype(np.float32).tolist()
