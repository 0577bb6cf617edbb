"""The HTTP app: OpenAI-compatible /v1/embeddings, /v1/think, /v1/models, /health and /metrics.

Two model ids route a text: `<name>-query` thinks k times before it embeds, `<name>-document` embeds directly
(most clients can only choose a model id, not send a flag). The routes and the app's lifecycle are here; the request
bodies, error shapes and input checks in `protocol.py`; the key, size and metrics middleware in `guard.py`.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from ..validation import check_k
from .admission import Admission, Full
from .batching import Batcher, Result, ShuttingDown
from .cors import add_cors, check_origins
from .guard import ALIASES, BODY_OVERHEAD, OPEN, ROUTES, Guard  # noqa: F401 (importable from here, as before)
from .metrics import Metrics
from .protocol import (  # noqa: F401 (the schemas and error shapes: importable from here, as before)
    ApiError, EmbeddingRequest, Limits, ThinkRequest, embeddings_json, input_texts,
    install_error_handlers, k_value, model_kind)
from .window import InputTooLong

from fastapi import FastAPI, Request  # noqa: E402 (after .protocol: that import says how to install FastAPI)
from fastapi.responses import Response  # noqa: E402

# nginx's "client closed request": the status /metrics records for a request whose client left before its answer.
CLIENT_GONE = 499


def default_name(embedder) -> str:
    """The served name: the model's own name, or its directory's for a path."""
    name = str(embedder.name)
    return Path(name).name if ("/" in name or "\\" in name) else name


def create_app(embedder, *, name: str | None = None, api_key: str | None = None, k: int = 3,
               max_batch: int = 32, max_wait_ms: float = 5.0, limits: Limits | None = None,
               cors_origins=()) -> "FastAPI":
    """An app serving one loaded O1Embedder. Requests are merged by a Batcher started in the app's lifespan.
    `cors_origins`: the web pages (origins, or '*') a browser lets call it; none: no CORS headers."""
    check_k(k)
    cors_origins = check_origins(cors_origins)
    name = name or default_name(embedder)
    ids = {f"{name}-query": "query", f"{name}-document": "document"}
    limits = limits or Limits()
    metrics = Metrics()
    batcher = Batcher(embedder, max_batch=max_batch, max_wait_ms=max_wait_ms, metrics=metrics)
    admission = Admission(batcher, limits.max_queue, limits.queue_wait)
    metrics.waiting_for_room.set_function(lambda: admission.waiting)  # read at each scrape, on the event loop
    key = api_key.encode() if api_key else None

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()  # uvicorn runs this after in-flight requests have finished (SIGTERM drains)

    app = FastAPI(title="o1-retriever", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.batcher, app.state.metrics, app.state.model_ids = batcher, metrics, list(ids)
    app.state.admission = admission
    app.add_middleware(Guard, key=key, limits=limits, metrics=metrics)
    add_cors(app, cors_origins)  # after Guard: outside it, so a preflight needs no key

    install_error_handlers(app)

    @app.post("/v1/embeddings")
    @app.post("/embeddings", include_in_schema=False)  # clients configured without /v1 (Infinity's layout)
    async def embeddings(body: EmbeddingRequest, request: Request):
        kind = model_kind(body.model, body.input_type, name, ids)
        texts = input_texts(body.input, limits)
        if body.dimensions is not None and body.dimensions != embedder.dim:
            raise ApiError(400, f"dimensions={body.dimensions} is not available: this model embeds into "
                                f"{embedder.dim} dimensions (leave `dimensions` out)", "dimensions")
        if kind == "document" and (body.k is not None or body.return_thoughts):
            field = "k" if body.k is not None else "return_thoughts"
            raise ApiError(400, f"{field} applies to queries only: {name}-document embeds without thinking "
                                f"(use model {name}-query)", field)
        kq = k_value(body.k, k) if kind == "query" else 0
        metrics.inputs.labels(kind).inc(len(texts))
        result = await _serve(request, admission, kind, texts, kq)
        if result is None:
            return Response(status_code=CLIENT_GONE)
        thoughts = result.thoughts if body.return_thoughts else None
        payload = await asyncio.to_thread(embeddings_json, result.embeddings, body.encoding_format, thoughts,
                                          f"{name}-{kind}", sum(result.tokens))
        return Response(payload, media_type="application/json")

    @app.post("/v1/think")
    async def think(body: ThinkRequest, request: Request):
        if body.model is not None and model_kind(body.model, None, name, ids) != "query":
            raise ApiError(400, f"model={body.model!r} does not think; use {name}-query or leave model out", "model")
        texts = input_texts(body.input, limits)
        kq = k_value(body.k, k)
        metrics.inputs.labels("think").inc(len(texts))
        result = await _serve(request, admission, "think", texts, kq)
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
                "k": k, "queue_depth": batcher.depth, "waiting_for_room": admission.waiting,
                "max_queue": limits.max_queue, "queue_wait": limits.queue_wait, "max_batch": max_batch,
                "max_wait_ms": max_wait_ms}

    @app.get("/metrics")
    async def prometheus():
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    return app


async def _serve(request: Request, admission: Admission, kind: str, texts: list[str], k: int):
    """The result for `texts`, or None when the client disconnected first: whatever it was doing then stops (its
    place in line for room, its jobs still queued are never computed: a timed-out client that retries would
    otherwise have its work done twice)."""
    work, gone = asyncio.ensure_future(_admit_and_run(admission, kind, texts, k)), \
        asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if work.cancel():  # the client left, or this handler was cancelled
            # the task ends with a CancelledError that nobody awaits: retrieve it, or asyncio logs it as an error
            work.add_done_callback(lambda f: f.cancelled() or f.exception())
    return work.result() if work.done() else None


async def _admit_and_run(admission: Admission, kind: str, texts: list[str], k: int) -> Result:
    """Room in the queue (a 429 when none comes in time: see admission.py), the texts cut to the model's window,
    then the engine. A request is queued in jobs of --max-batch texts, so a large one stops at the next engine call,
    not at its end. An engine failure fails the requests of its batch with a 500 that names it; the server keeps
    serving."""
    n, batcher = len(texts), admission.batcher
    try:
        await admission.enter(n)
    except Full as e:
        raise ApiError(429, f"the server is busy: {e}; this request's {n} texts would pass its limit of "
                            f"{admission.max_queue} (--max-queue); send it again in a moment",
                       code="server_overloaded", headers={"Retry-After": "1"}) from None
    try:
        read = await _read_window(batcher, kind, texts)
        # A document goes to the engine cut: the same vector, at the cost of its window. A query goes whole: its
        # thoughts are seeded from its text, and keyed in the caches by it, so a cut query would think otherwise
        # than the same query given to `encode_queries` in process (the engine cuts what it tokenizes itself).
        if kind == "document":
            texts = read
        step = batcher.max_batch
        jobs = [batcher.enqueue(kind, texts[i:i + step], k, read[i:i + step]) for i in range(0, n, step)]
    except BaseException as e:
        admission.leave(n)
        if isinstance(e, ShuttingDown):
            raise _shutting_down(e) from e
        raise
    admission.queued(n)  # the batcher's queue counts them now
    try:
        return Result.join(await asyncio.gather(*jobs))
    except ShuttingDown as e:
        raise _shutting_down(e) from e
    except Exception as e:
        raise ApiError(500, f"the engine failed on this batch: {type(e).__name__}: {e}", code="engine_error") from e
    finally:
        for job in jobs:  # cancelled, or a slice failed: the rest are not needed either
            job.cancel()


def _shutting_down(e: ShuttingDown) -> ApiError:
    return ApiError(503, f"{e}: send the request again once the server is back", code="server_shutting_down")


async def _read_window(batcher: Batcher, kind: str, texts: list[str]) -> list[str]:
    """Texts cut to what the model reads (see window.py): what `usage` counts, and a 413 for a text whose window
    cannot be found cheaply."""
    try:
        return await batcher.read_window(kind, texts)
    except InputTooLong as e:
        raise ApiError(413, str(e), "input", "too_large") from None
    except ShuttingDown as e:
        raise _shutting_down(e) from e


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection. The body is already read, so the server's next message is
    the disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
