"""`OpenAIThinker`: thoughts from an OpenAI-compatible `/chat/completions` endpoint (vLLM, llama.cpp server, Ollama,
`transformers serve`, a hosted API), with the replies, errors and refusals each of them gives."""
from __future__ import annotations

import json
import math
import os
import time
from urllib.parse import unquote, urlsplit, urlunsplit

from .refused_parameters import ADAPTABLE, MODEL_OWN, RefusedParameters, RefusedSamplingWarning  # noqa: F401
from .remote_thinking import USERINFO, RemoteThinker, ThinkerAPIError, _detail, _error_text
from .retrying import backoff, retry_after
from .sampling import row_seeds
from .settings import InferenceSettings

API_KEY_ENV = "OPENAI_API_KEY"  # read when no api_key is given, as the OpenAI SDK does
RETRYABLE = frozenset({408, 409, 429}) | frozenset(range(500, 600))
REFUSED_N = 500  # llama.cpp's answer to n > 1 ("Only one completion choice is allowed"), or an outage


class OpenAIThinker(RemoteThinker):
    """Thoughts from an OpenAI-compatible `/chat/completions` endpoint.

    base_url: as for the OpenAI SDK, e.g. http://127.0.0.1:8000/v1 (a URL with no path gets /v1; the full
    .../chat/completions URL and a ?query such as api-version are taken too; user:password@ is sent as basic auth and
    never shown). model: the name the server knows the model by. api_key: sent as a bearer token (default:
    $OPENAI_API_KEY); it is not part of the fingerprint, and errors mask it.
    Sampling comes from the embedder's settings (temperature, top_p, max_new_tokens as max_tokens, and a seed per
    query derived from `seed`, so a server that honours seeds writes the same thoughts again); the server's own chat
    template and prompt window apply. One request asks for all k thoughts (`n=k`); a server that answers with fewer
    choices (`transformers serve`, Ollama) or refuses `n` (llama.cpp, with HTTP 500) is then asked once per thought,
    each with its own seed. Up to `concurrency` requests are in flight; 408/409/429/5xx answers and lost connections
    are retried `retries` times with exponential backoff from `backoff` seconds, jittered, each wait at most 8 s (a
    Retry-After, seconds or an HTTP date, is honoured up to 30 s). A server
    that ignores temperature and seed answers k identical thoughts per query: a `RepeatedThoughtsWarning` says so,
    once. A server that refuses max_tokens for max_completion_tokens, or refuses temperature or top_p (OpenAI's
    reasoning models, o-series and gpt-5, do both), is sent what it takes from then on; a dropped sampling parameter
    is the model's own in thought-cache keys, and a `RefusedSamplingWarning` says so, once per parameter."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, concurrency: int = 4,
                 timeout: float = 120.0, retries: int = 3, backoff: float = 0.5, n_per_request: bool | None = None):
        super().__init__(concurrency)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            shown = USERINFO.sub("", base_url) if isinstance(base_url, str) else base_url
            raise ValueError(f"base_url={shown!r} must be an http(s) URL such as http://127.0.0.1:8000/v1")
        if not isinstance(model, str) or not model:
            raise ValueError(f"model={model!r} must be the (non-empty) name the server serves the model under")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r} must be an int >= 0")
        for name, value in (("timeout", timeout), ("backoff", backoff)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                    value < 0 or name == "timeout" and value == 0):  # nan and inf failed only at the first request
                raise ValueError(f"{name}={value!r} must be a finite number of seconds "
                                 + ("> 0" if name == "timeout" else ">= 0"))
        if n_per_request not in (None, True, False):
            raise ValueError(f"n_per_request={n_per_request!r}: use None (find out), True or False")
        parts = urlsplit(base_url)
        host = parts.netloc.rpartition("@")[2]  # user:password@ goes to the server (basic auth), never into texts
        if not host:
            raise ValueError(f"base_url={USERINFO.sub('', base_url)!r} names no host; use one such as "
                             "http://127.0.0.1:8000/v1")
        # As the OpenAI SDK takes it, with or without a trailing slash; the full endpoint URL is taken as well, and
        # scheme://host[:port] with no path gets the OpenAI convention, /v1.
        path = parts.path.rstrip("/").removesuffix("/chat/completions") or "/v1"
        self.base_url, self.model_name = f"{parts.scheme}://{host}{path}", model  # shown and fingerprinted
        self.url = self.base_url + "/chat/completions"
        # user:password@ goes as an auth setting, not in the URL: httpx logs each request's URL at INFO level.
        self._request_url = urlunsplit((parts.scheme, host, path + "/chat/completions", parts.query, ""))
        self._basic_auth = (unquote(parts.username or ""), unquote(parts.password or "")) if "@" in parts.netloc \
            else None
        self._api_key = _api_key(api_key)
        self._secrets = [secret for secret in (self._api_key, parts.password, self._basic_auth and self._basic_auth[1])
                         if secret]
        self.timeout, self.retries, self.backoff = float(timeout), retries, float(backoff)
        self.n_per_request = n_per_request  # None until a reply shows whether the server honours n
        self._n_refusals = 0
        self._refusals = RefusedParameters()  # fields the server refused with a 400, sent otherwise from then on

    @property
    def fingerprint(self) -> str:
        return f"openai:{self.base_url}|{self.model_name}"

    @property
    def refused(self) -> set[str]:
        """The sampling parameters (ADAPTABLE) the server refused: no longer sent."""
        return self._refusals.refused

    def cache_params(self, params: dict) -> list[dict]:
        """The forms its thoughts are cached under, the current one first (see `RefusedParameters`)."""
        return self._refusals.cache_params(params)

    def _sampling(self, config):
        return self._refusals.sampling(config)

    def _repeat_cause(self):
        return ("the server appears to ignore temperature/seed (`transformers serve` samples only when the model's "
                "generation_config.json has \"do_sample\": true), or the model does not vary at this temperature")

    def _think(self, queries, k, config):
        import httpx  # noqa: F401  (checked before any thread starts)
        client = _httpx_client(self.timeout, self.concurrency, self._api_key, self._basic_auth)
        with client:
            return self._parallel(lambda query: self._thoughts(client, query, k, config), queries)

    def _thoughts(self, client, query: str, k: int, config: InferenceSettings) -> list[str]:
        seeds = [seed >> 32 for seed in row_seeds(config.seed, [query], k)] if config.seed is not None else None
        payload = {"model": self.model_name, "messages": self.messages(query), "temperature": config.temperature,
                   "top_p": config.top_p, "max_tokens": config.max_new_tokens}
        if config.min_new_tokens:  # vLLM's and SGLang's field; a server without it refuses it, rather than ignore it
            payload["min_tokens"] = config.min_new_tokens
        texts: list[str] = []
        if self.n_per_request is not False and k > 1:
            probing = self.n_per_request is None
            try:  # a 500 that may refuse n is not retried: a refusal comes at once, and again
                texts = self._choices(client, payload | _seed(seeds, 0) | {"n": k}, retry_500=not probing)
                self.n_per_request = len(texts) >= k
            except ThinkerAPIError as error:
                if not probing or error.status is None or (error.status in RETRYABLE and error.status != REFUSED_N):
                    raise  # an outage (502, 503, ... retried already), not a refusal of n
                # A 4xx (or a 200 without choices) to n > 1: ask for one thought (if that fails too, its error is the
                # real one). A 500 may refuse n or be an outage, so a second one settles it.
                texts = self._choices(client, payload | _seed(seeds, 0))
                self._n_refusals += 1
                if error.status != REFUSED_N or self._n_refusals >= 2:
                    self.n_per_request = False
        while len(texts) < k:  # thought j asks with seed j, so the k thoughts differ
            texts += self._choices(client, payload | _seed(seeds, len(texts)))[:1]
        return texts[:k]

    def _choices(self, client, payload: dict, retry_500: bool = True) -> list[str]:
        while True:  # each retry sends one field fewer (or renamed): it ends
            sent = self._refusals.accepted(payload)
            try:
                reply = self._post(client, sent, retry_500)
                break
            except ThinkerAPIError as error:
                if not self._refusals.learn(error, sent, self.fingerprint):
                    raise
        self._refusals.answered = True
        if isinstance(reply, dict) and "choices" not in reply and reply.get("error"):  # some proxies answer so
            raise self._error(f"{self.url} answered HTTP 200 with an error for model {self.model_name!r}: "
                              f"{_error_text(reply)}", 200)
        try:
            texts = [_content(choice["message"]["content"]) for choice in reply["choices"]]
        except (KeyError, TypeError, IndexError) as error:
            raise self._error(f"{self.url} (model {self.model_name!r}) answered without chat choices: "
                              f"{json.dumps(reply)[:300]}", 200) from error
        if not texts:
            raise self._error(f"{self.url} (model {self.model_name!r}) answered with no choices", 200)
        return texts

    def _post(self, client, payload: dict, retry_500: bool = True) -> dict:
        import httpx
        retryable = RETRYABLE if retry_500 else RETRYABLE - {REFUSED_N}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            wait = backoff(attempt, first=self.backoff)
            try:
                response = client.post(self._request_url, json=payload)
            except httpx.DecodingError as error:  # a body its Content-Encoding does not decode: not retried
                raise self._error(f"{self.url} answered with a body that does not decode as its Content-Encoding "
                                  f"says ({error}); is a proxy between here and the server rewriting it?") from error
            except httpx.TimeoutException as error:
                if last:
                    raise self._error(f"{self.url} did not answer within {self.timeout:g} s "
                                      f"({self.retries + 1} tries): {error!r}") from error
            except httpx.TransportError as error:
                if last:
                    raise self._error(f"could not reach {self.url} ({self.retries + 1} tries; is the "
                                      f"server running?): {error!r}") from error
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise self._error(f"{self.url} answered HTTP 200 with a body that is not "
                                          f"JSON: {response.text[:300]!r}", 200) from error
                if response.status_code not in retryable or last:
                    tries = f" after {attempt + 1} tries" if attempt else ""
                    hint = (" (is base_url the one an OpenAI client takes, such as http://host:port/v1?)"
                            if response.status_code in (404, 405) else "")
                    if response.is_redirect:  # not followed: a POST redirected elsewhere would carry the key along
                        hint = f" (it redirects to {response.headers['location']}: give base_url as that URL)"
                    raise self._error(f"{self.url} answered HTTP {response.status_code}{tries} for "
                                      f"model {self.model_name!r}: {_detail(response)}{hint}", response.status_code)
                wait = max(wait, retry_after(response) or 0.0)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _error(self, message: str, status: int | None = None) -> ThinkerAPIError:
        for secret in self._secrets:  # a server or a library may echo the key or the URL's password back
            message = message.replace(secret, "***")
        return ThinkerAPIError(self.url, message, status)


def _api_key(api_key: str | None) -> str | None:
    """The key to send (default: $OPENAI_API_KEY), without the line end a key read from a file keeps. A key an HTTP
    header cannot carry is refused without being shown (httpx's own error would print it)."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if key is None:
        return None
    if not isinstance(key, str):
        raise TypeError(f"api_key must be a str, got {type(key).__name__}")
    key = key.strip()
    if not (key.isascii() and key.isprintable()):
        raise ValueError(f"api_key ({'given' if api_key is not None else '$' + API_KEY_ENV}) holds a character an "
                         "HTTP header cannot carry (a line break, a control or non-ASCII character); not shown here")
    return key or None


def _seed(seeds: list[int] | None, row: int) -> dict:
    return {} if seeds is None else {"seed": seeds[row]}


def _content(content) -> str:
    """A message's text: a string, none (empty), or a list of content parts ({"type": "text", "text": ...})."""
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content
                       if isinstance(part, dict) and part.get("type", "text") == "text")
    if content is not None and not isinstance(content, str):
        raise TypeError(f"content {content!r} is not text")
    return content or ""


def _httpx_client(timeout: float, concurrency: int, api_key: str | None, basic_auth: tuple[str, str] | None):
    try:
        import httpx
    except ImportError as error:
        raise ImportError("OpenAIThinker needs httpx: pip install httpx") from error
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(timeout=timeout, headers=headers, auth=basic_auth,
                        limits=httpx.Limits(max_connections=concurrency))
