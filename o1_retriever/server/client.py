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
import time
from typing import Any

import numpy as np

from ..batching import show_progress
from ..embedder import QueryEncoding
from ..validation import as_text_list, check_k, check_positive_int

API_KEY_ENV = "O1_RETRIEVER_API_KEY"  # the variable `o1-retriever serve` reads its key from
DEFAULT_TIMEOUT = 600.0  # seconds per request: thinking about a batch of queries on a CPU takes minutes
# A server that is up accepts a connection at once; the long wait is for its answer, not for the connection.
CONNECT_TIMEOUT = 10.0
RETRIES = 2  # connection failures retried (a restart, a dropped connection), as the openai client does
BACKOFF = 0.5  # seconds before the first retry, doubled for each next one
MAX_RETRY_AFTER = 30.0  # the longest a busy server's Retry-After is waited


class O1ServerError(RuntimeError):
    """The server answered with an error status. `status`, `message`, `code` and `param` are the server's."""

    def __init__(self, url: str, route: str, status: int, message: str, code: str | None = None,
                 param: str | None = None):
        self.url, self.route, self.status = url, route, status
        self.message, self.code, self.param = message, code, param
        hint = (f" (pass api_key=..., or set ${API_KEY_ENV}, to the key the server was started with)"
                if status == 401 else "")
        super().__init__(f"o1-retriever server at {url} answered {route} with HTTP {status}"
                         f"{f' ({code})' if code else ''}: {message}{hint}")


def normalize_url(url: str) -> str:
    """`http://host:port`, from that or an OpenAI-style base URL (`.../v1`), with or without a trailing slash."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str such as 'http://127.0.0.1:8000', got {type(url).__name__}")
    base = url.strip().rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    if not base.startswith(("http://", "https://")) or not base.split("://", 1)[1]:
        raise ValueError(f"url={url!r} is not an http(s) URL; expected e.g. 'http://127.0.0.1:8000' "
                         "(where `o1-retriever serve` listens)")
    return base


def _retry_after(response, default: float) -> float:
    """The seconds a 429's Retry-After asks for (at most MAX_RETRY_AFTER), else `default`."""
    value = response.headers.get("retry-after", "")
    return min(float(value), MAX_RETRY_AFTER) if value.replace(".", "", 1).isdigit() else default


class RemoteEmbedder:
    """An O1Embedder stand-in that sends each call to a server (`encode_queries`, `encode_documents`, `think`,
    `fingerprint`, `dim`, `name`). `batch_size` is texts per request; the server merges concurrent requests into
    its own batches. `model` is the served name (`o1-retriever serve --name`); None: the one the server serves.
    `api_key` None reads $O1_RETRIEVER_API_KEY, as the server does. `timeout` bounds each answer, `connect_timeout`
    each connection; a connection that fails or drops before the answer, or a server too busy to queue it (HTTP 429,
    after its Retry-After), is tried `retries` more times (every call is idempotent: a query's thoughts are seeded),
    a timeout or another error status never (the server has the work, or it would fail again)."""

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT, retries: int = RETRIES):
        self.url = normalize_url(url)
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"api_key must be a str or None, got {type(api_key).__name__}")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ValueError(f"model must be the served name (a non-empty str, as `serve --name`) or None, got "
                             f"{model!r}")
        for field, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{field} must be a number of seconds > 0, got {value!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0 (0: no retry), got {retries!r}")
        self.model, self.timeout, self.retries = model, float(timeout), retries
        self.connect_timeout = min(float(connect_timeout), self.timeout)
        self._api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        self._client = None
        self._info: dict | None = None
        self._lock = threading.Lock()

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
        check_k(k)
        check_positive_int(batch_size, "batch_size")
        body = {"model": f"{self.served_name}-query", "input_type": "query", "k": k,
                "return_thoughts": bool(return_thoughts)}
        vectors, thoughts = self._embed(texts, body, batch_size, show_progress_bar, "Thinking")
        if single:
            vectors, thoughts = vectors[0], thoughts[0]
        return QueryEncoding(vectors, thoughts) if return_thoughts else vectors

    def encode_documents(self, documents, batch_size: int = 32, show_progress_bar: bool | None = None) -> np.ndarray:
        """Passages embedded directly (no thinking), on the server."""
        texts, single = as_text_list(documents, "documents")
        check_positive_int(batch_size, "batch_size")
        body = {"model": f"{self.served_name}-document", "input_type": "document"}
        vectors, _ = self._embed(texts, body, batch_size, show_progress_bar, "Embedding")
        return vectors[0] if single else vectors

    def encode_query(self, query, **kwargs):
        return self.encode_queries(query, **kwargs)

    def encode_document(self, document, **kwargs):
        return self.encode_documents(document, **kwargs)

    def think(self, queries, k: int = 3, batch_size: int = 32, show_progress_bar: bool | None = None) -> list:
        """k thoughts per query (list of lists; a flat list for a single str), from `POST /v1/think`."""
        texts, single = as_text_list(queries, "queries")
        check_k(k)
        check_positive_int(batch_size, "batch_size")
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

    def _http(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        import httpx
                    except ImportError as e:  # chromadb depends on httpx, so this is a broken install
                        raise ImportError("RemoteEmbedder needs httpx: pip install httpx") from e
                    headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
                    timeout = httpx.Timeout(self.timeout, connect=self.connect_timeout)
                    self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        return self._client

    def _request(self, method: str, route: str, body: dict | None = None) -> dict[str, Any]:
        response = self._send(method, route, body)
        if response.status_code != 200:
            try:
                error = response.json()["error"]
                message, code, param = error["message"], error.get("code"), error.get("param")
            except (ValueError, KeyError, TypeError):  # not our JSON envelope: a proxy, or another server
                message, code, param = response.text[:300] or response.reason_phrase, None, None
            raise O1ServerError(self.url, route, response.status_code, message, code, param)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):  # a proxy's page, or another kind of server on that port
            kind = response.headers.get("content-type") or "no content type"
            raise O1ServerError(self.url, route, response.status_code, f"the answer is not a JSON object ({kind}: "
                                f"{response.text[:200]!r}); is this an o1-retriever server?")
        return answer

    def _send(self, method: str, route: str, body: dict | None):
        """The response, retrying a connection that could not open or dropped before any answer, and a 429."""
        import httpx
        for attempt in range(self.retries + 1):
            try:
                response = self._http().request(method, route, json=body)
                if response.status_code != 429 or attempt == self.retries:
                    return response
                time.sleep(_retry_after(response, BACKOFF * 2 ** attempt))  # busy: it has none of the work
                continue
            except (httpx.ConnectTimeout, httpx.NetworkError, httpx.RemoteProtocolError) as e:
                if attempt == self.retries:
                    tries = f" (tried {attempt + 1} times)" if attempt else ""
                    raise ConnectionError(f"cannot reach the o1-retriever server at {self.url}{tries} "
                                          f"({type(e).__name__}: {e}); is `o1-retriever serve` running there?") from e
            except httpx.TimeoutException as e:
                raise TimeoutError(f"o1-retriever server at {self.url} did not answer {route} within "
                                   f"{self.timeout:g} s (thinking on a CPU takes seconds per query: raise timeout=, "
                                   "or send fewer texts per request with a smaller batch_size)") from e
            except httpx.TransportError as e:  # a bad URL or proxy: a retry cannot help
                raise ConnectionError(f"cannot reach the o1-retriever server at {self.url} ({type(e).__name__}: "
                                      f"{e}); is `o1-retriever serve` running there?") from e
            time.sleep(BACKOFF * 2 ** attempt)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> "RemoteEmbedder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Frameworks copy and pickle their embedding objects: the connection pool and lock are made again on use.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _client=None, _lock=threading.Lock())

    def __repr__(self) -> str:
        return f"RemoteEmbedder(url={self.url!r}, model={self.model!r})"
