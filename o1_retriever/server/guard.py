"""What every request passes before its route: the API key, the body's size (also a streamed one, capped while
read), and, after it, the request count and latency per route for /metrics."""
from __future__ import annotations

import asyncio
import hmac
import time

from .metrics import Metrics
from .protocol import Limits, error_response

from fastapi import Request  # noqa: E402  (after .protocol: that import says how to install FastAPI)
from fastapi.responses import JSONResponse  # noqa: E402

BODY_OVERHEAD = 64 * 1024  # JSON punctuation and escapes on top of the text itself
ROUTES = ("/v1/embeddings", "/v1/think", "/v1/models", "/health", "/metrics")  # /v1/models/ID counts as other
ALIASES = {"/embeddings": "/v1/embeddings"}  # counted under the route they serve
OPEN = ("/health", "/metrics", "/docs", "/openapi.json")  # no key needed: probes, scrapers, the API's description


class Guard:
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
            await error_response(503, "the server shut down before this request finished (it was still running "
                                      "when --graceful-timeout ran out); send it again once the server is back",
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
        return error_response(401, f"{what} API key: send the server's key as `Authorization: Bearer KEY`",
                              code="invalid_api_key")
    return None


def _byte_cap(limits: Limits) -> int:
    """Each character takes up to 6 bytes as a JSON escape; the exact character count is checked once parsed."""
    return limits.max_chars * 6 + BODY_OVERHEAD


def _too_large(what: str, limits: Limits) -> JSONResponse:
    return error_response(413, f"{what} is over this server's limit of {_byte_cap(limits)} bytes (--max-chars "
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
