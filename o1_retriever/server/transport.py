"""The HTTP side of `RemoteEmbedder`: one pooled connection per client, retries of what a retry can mend (a
connection that failed or dropped before any answer, a server too busy to queue the work or shutting down, a proxy
with no server behind it), and the server's error envelope turned into `O1ServerError`."""
from __future__ import annotations

import threading
import time
from typing import Any

from ..retrying import backoff, retry_after

API_KEY_ENV = "O1_RETRIEVER_API_KEY"  # the variable `o1-retriever serve` reads its key from
DEFAULT_TIMEOUT = 600.0  # seconds per request: thinking about a batch of queries on a CPU takes minutes
# A server that is up accepts a connection at once; the long wait is for its answer, not for the connection.
CONNECT_TIMEOUT = 10.0
RETRIES = 2  # retries after the first try, as the openai client's max_retries
# Statuses that say "not now" rather than "not this": a request timeout, a busy server (429), a proxy with no server
# behind it (502, 504), a server shutting down (503 server_shutting_down). Every call is idempotent (a query's
# thoughts are seeded), so sending it again is safe. A 500 is this server's engine failing on the batch: the same
# texts most likely fail again, after another full engine run. Other 4xx are the request's own fault.
RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})


class O1ServerError(RuntimeError):
    """The server answered with an error status. `status`, `message`, `code` and `param` are the server's."""

    def __init__(self, url: str, route: str, status: int, message: str, code: str | None = None,
                 param: str | None = None, tries: int = 1):
        self.url, self.route, self.status = url, route, status
        self.message, self.code, self.param, self.tries = message, code, param, tries
        hint = (f" (pass api_key=..., or set ${API_KEY_ENV}, to the key the server was started with)"
                if status == 401 else f" (tried {tries} times)" if tries > 1 else "")
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


class Transport:
    """Requests to `self.url` with `self._api_key`, `self.timeout`, `self.connect_timeout` and `self.max_retries`
    (set by the subclass); the connection pool is made on first use, again after pickling."""

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
        response, tries = self._send(method, route, body)
        if response.status_code != 200:
            try:
                error = response.json()["error"]
                message, code, param = error["message"], error.get("code"), error.get("param")
            except (ValueError, KeyError, TypeError):  # not our JSON envelope: a proxy, or another server
                message, code, param = response.text[:300] or response.reason_phrase, None, None
            raise O1ServerError(self.url, route, response.status_code, message, code, param, tries)
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
        """The response and the tries it took: a connection that could not open or dropped before any answer, and
        a status in RETRY_STATUSES, are tried again up to `max_retries` times (after the status's Retry-After, else
        a growing backoff); the last try's response is returned whatever its status."""
        import httpx
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._http().request(method, route, json=body)
            except (httpx.ConnectTimeout, httpx.NetworkError, httpx.RemoteProtocolError) as e:
                if last:
                    tries = f" (tried {attempt + 1} times)" if attempt else ""
                    raise ConnectionError(f"cannot reach the o1-retriever server at {self.url}{tries} "
                                          f"({type(e).__name__}: {e}); is `o1-retriever serve` running there?") from e
                wait = backoff(attempt)
            except httpx.TimeoutException as e:  # the server may still be working on it: not sent again
                raise TimeoutError(f"o1-retriever server at {self.url} did not answer {route} within "
                                   f"{self.timeout:g} s (thinking on a CPU takes seconds per query: raise timeout=, "
                                   "or send fewer texts per request with a smaller batch_size)") from e
            except httpx.TransportError as e:  # a bad URL or proxy: a retry cannot help
                raise ConnectionError(f"cannot reach the o1-retriever server at {self.url} ({type(e).__name__}: "
                                      f"{e}); is `o1-retriever serve` running there?") from e
            else:
                if last or response.status_code not in RETRY_STATUSES:
                    return response, attempt + 1
                wait = retry_after(response)
                if wait is None:
                    wait = backoff(attempt)
            time.sleep(wait)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Frameworks copy and pickle their embedding objects: the connection pool and lock are made again on use.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_lock")}

    def __setstate__(self, state: dict) -> None:
        if "retries" in state:  # pickled before the field took the openai client's name
            state["max_retries"] = state.pop("retries")
        self.__dict__.update(state, _client=None, _lock=threading.Lock())
