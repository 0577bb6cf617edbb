"""`RemoteEmbedder`: the O1Embedder calls the integrations make, answered by an `o1-retriever serve` server.

    remote = RemoteEmbedder("http://127.0.0.1:8000", api_key="...")   # nothing loads here; no request yet
    remote.encode_queries(["why does bread rise?"], k=3)              # POST /v1/embeddings, model NAME-query
    remote.encode_documents(["Yeast makes gas ..."])                  # POST /v1/embeddings, model NAME-document
    remote.think("why does bread rise?", k=2)                         # POST /v1/think

Vectors come back as little-endian float32 (base64), so they are bit for bit the server's. The served name (for the
`NAME-query` / `NAME-document` ids), `fingerprint` and `dim` are read once from `GET /health` when first needed.
"""
from __future__ import annotations

import base64
import os
import threading

import numpy as np

from ..batching import show_progress
from ..embedder import QueryEncoding
from ..validation import as_text_list, check_k, check_positive_int, plain_int
from ..st_surface import SentenceTransformerSurface
from ..retrying import BACKOFF, MAX_BACKOFF, MAX_RETRY_AFTER  # noqa: F401 (importable from here, as before)
from .transport import (  # noqa: F401 (importable from here, as before)
    API_KEY_ENV, CONNECT_TIMEOUT, DEFAULT_TIMEOUT, RETRIES, RETRY_STATUSES, O1ServerError, Transport, normalize_url)


class RemoteEmbedder(Transport, SentenceTransformerSurface):
    """An O1Embedder stand-in that sends each call to a server (`encode_queries`, `encode_documents`, `think`,
    `fingerprint`, `dim`, `name`, and sentence-transformers' `encode_query`/`encode_document`/`similarity` as
    O1Embedder has them: vectors arrive here, so tensors are on the CPU). `batch_size` is texts per request; the server merges concurrent requests into
    its own batches. `model` is the served name (`o1-retriever serve --name`); None: the one the server serves.
    `api_key` None reads $O1_RETRIEVER_API_KEY, as the server does. `timeout` bounds each answer, `connect_timeout`
    each connection. As the openai client, a request is tried `max_retries` (2) more times, 0.5 s then 1 s apart (at
    most 8 s, less up to a quarter) or after the server's Retry-After (at most 30 s), when its connection failed or
    dropped before the answer, or the answer was 408, 429 (busy), 502/504 (a proxy with no server) or 503 (shutting
    down); every call is idempotent (a query's thoughts are seeded). A timeout is not retried (the server may still
    be working on it), nor a 500 (the engine failed on these texts) or another 4xx. `retries` is the older name."""

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT, max_retries: int = RETRIES,
                 retries: int | None = None):
        self.url = normalize_url(url)
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"api_key must be a str or None, got {type(api_key).__name__}")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ValueError(f"model must be the served name (a non-empty str, as `serve --name`) or None, got "
                             f"{model!r}")
        for field, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{field} must be a number of seconds > 0, got {value!r}")
        if retries is not None:
            if max_retries not in (RETRIES, retries):
                raise ValueError(f"retries={retries!r} and max_retries={max_retries!r} disagree; give max_retries "
                                 "only (retries is its older name)")
            max_retries = retries
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0 (0: no retry), got {max_retries!r}")
        self.model, self.timeout, self.max_retries = model, float(timeout), max_retries
        self.connect_timeout = min(float(connect_timeout), self.timeout)
        self._api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        self._client = None
        self._info: dict | None = None
        self._lock = threading.Lock()

    @property
    def retries(self) -> int:
        """The older name of `max_retries`: code that read or set it keeps working."""
        return self.max_retries

    @retries.setter
    def retries(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"retries must be an int >= 0 (0: no retry), got {value!r}")
        self.max_retries = value

    # ---- what the server serves ------------------------------------------------------------------
    def health(self) -> dict:
        """`GET /health`, fresh: model name, fingerprint, dim, device, dtype, default k, queue depth."""
        return self._request("GET", "/health")

    @property
    def info(self) -> dict:
        """`/health` as first read (the served model does not change while a server runs)."""
        if self._info is None:
            info = self.health()
            missing = [key for key in ("name", "fingerprint", "dim") if key not in info]
            if missing:  # another server on that port (TEI, Infinity, ...) answers /health its own way
                raise O1ServerError(self.url, "/health", 200, f"the answer has no {', '.join(missing)}: "
                                    f"{str(info)[:200]} (is this an o1-retriever server?)")
            self._info = info
        return self._info

    @property
    def served_name(self) -> str:
        """NAME in the `NAME-query` / `NAME-document` ids."""
        return self.model if self.model is not None else self.info["name"]

    @property
    def name(self) -> str:
        """The served model's own name (what `O1Embedder.name` is on the server: a path, id or default name)."""
        return self.info.get("model") or self.info["name"]

    @property
    def fingerprint(self) -> str:
        return self.info["fingerprint"]

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    # ---- the engine calls ------------------------------------------------------------------------
    def encode_queries(self, queries, k: int = 3, batch_size: int = 32, show_progress_bar: bool | None = None,
                       return_thoughts: bool = False, aggregation: str | None = None,
                       query_weight: float | None = None):
        """Think k times per query and embed, on the server. One str in gives a 1-D vector."""
        if aggregation is not None or query_weight is not None:
            raise ValueError("aggregation and query_weight are the served model's settings; a RemoteEmbedder "
                             "cannot change them per call (start the server with --aggregation/--query-weight)")
        texts, single = as_text_list(queries, "queries")
        k = check_k(plain_int(k))  # plain ints: they go into the JSON body
        batch_size = check_positive_int(plain_int(batch_size), "batch_size")
        body = {"model": f"{self.served_name}-query", "input_type": "query", "k": k,
                "return_thoughts": bool(return_thoughts)}
        vectors, thoughts = self._embed(texts, body, batch_size, show_progress_bar, "Thinking")
        if single:
            vectors, thoughts = vectors[0], thoughts[0]
        return QueryEncoding(vectors, thoughts) if return_thoughts else vectors

    def encode_documents(self, documents, batch_size: int = 32, show_progress_bar: bool | None = None) -> np.ndarray:
        """Passages embedded directly (no thinking), on the server."""
        texts, single = as_text_list(documents, "documents")
        batch_size = check_positive_int(plain_int(batch_size), "batch_size")
        body = {"model": f"{self.served_name}-document", "input_type": "document"}
        vectors, _ = self._embed(texts, body, batch_size, show_progress_bar, "Embedding")
        return vectors[0] if single else vectors

    device = "cpu"  # where the vectors (and convert_to_tensor's tensors) land

    def think(self, queries, k: int = 3, batch_size: int = 32, show_progress_bar: bool | None = None) -> list:
        """k thoughts per query (list of lists; a flat list for a single str), from `POST /v1/think`."""
        texts, single = as_text_list(queries, "queries")
        k = check_k(plain_int(k))
        batch_size = check_positive_int(plain_int(batch_size), "batch_size")
        data = self._results("/v1/think", {"model": f"{self.served_name}-query", "k": k}, texts, batch_size,
                             show_progress_bar, "Thinking")
        thoughts = [list(d["thoughts"]) for d in data]
        return thoughts[0] if single else thoughts

    # ---- transport -------------------------------------------------------------------------------
    def _embed(self, texts, body, batch_size, show_progress_bar, desc):
        if not texts:  # as the engine: an empty list in, an empty (0, dim) array out
            return np.zeros((0, self.dim), dtype=np.float32), []
        data = list(self._results("/v1/embeddings", body | {"encoding_format": "base64"}, texts, batch_size,
                                  show_progress_bar, desc))
        vectors = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data]
        return np.stack(vectors).astype(np.float32), [list(d.get("thoughts") or []) for d in data]

    def _results(self, route, body, texts, batch_size, show_progress_bar, desc):
        """The server's `data` items for `texts` in order, `batch_size` texts per request, under a progress bar."""
        from tqdm.auto import tqdm
        show = show_progress(show_progress_bar, len(texts))
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not show) as bar:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start:start + batch_size]
                data = sorted(self._request("POST", route, body | {"input": chunk}).get("data") or [],
                              key=lambda d: d["index"])
                if len(data) != len(chunk):
                    raise O1ServerError(self.url, route, 200, f"sent {len(chunk)} inputs, got {len(data)} "
                                        "results back (is this an o1-retriever server?)")
                yield from data
                bar.update(len(chunk))

    def __repr__(self) -> str:
        return f"RemoteEmbedder(url={self.url!r}, model={self.model!r})"
