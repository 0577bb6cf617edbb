"""Thinkers that run elsewhere: an OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama, `transformers serve`,
a hosted API), a LangChain chat model or a LlamaIndex LLM writes the thoughts; the local encoder embeds them.

    from o1_retriever import O1Embedder
    from o1_retriever.remote_thinking import OpenAIThinker
    emb = O1Embedder.composite(thinker=OpenAIThinker("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-0.5B-Instruct"))

Each is asked in the chat style, with the same instruction an in-process chat-prompted thinker gets
(`formatting.CHAT_INSTRUCTION`), as one user message; the server applies its model's chat template. No weights are
here to hash, so the thought cache keys on `fingerprint`: the endpoint and the model name (for the framework
objects, also their own sampling parameters, which are the ones that apply).
"""
from __future__ import annotations

import importlib
import json
import os
import re
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from tqdm.auto import tqdm

from .formatting import CHAT_INSTRUCTION
from .sampling import row_seeds
from .settings import InferenceSettings
from .validation import check_positive_int

API_KEY_ENV = "OPENAI_API_KEY"  # read when no api_key is given, as the OpenAI SDK does
RETRYABLE = frozenset({408, 409, 429}) | frozenset(range(500, 600))
REFUSED_N = 500  # llama.cpp's answer to n > 1 ("Only one completion choice is allowed"), or an outage
_SECRET_WORDS = ("key", "secret", "password", "auth", "header")  # and "token" (see _secret)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")  # user:password@ in a URL


class ThinkerAPIError(RuntimeError):
    """An endpoint failed to write thoughts. `url` is the endpoint asked; `status` its HTTP status (None: no answer)."""

    def __init__(self, url: str, message: str, status: int | None = None):
        self.url, self.status = url, status
        super().__init__(message)


class RepeatedThoughtsWarning(UserWarning):
    """A thinker behind an API wrote k > 1 thoughts per query that were all the same (they are worth one), or only
    empty ones."""


class RemoteThinker:
    """What `O1Embedder` needs of a thinker that is not an in-process transformers model: `think` (the signature of
    `thinking.Thinker.think`), `prompt_style`, `prompt` and a stable `fingerprint`. There is no model, tokenizer or
    device here; the fused think-and-embed step (`read=`) needs a local KV cache and is refused."""

    prompt_style = "chat"
    model = tokenizer = device = None  # the weights live behind the API
    compiled = False  # set by O1Embedder; static-cache decoding is the server's business

    def __init__(self, concurrency: int = 4):
        self.concurrency = check_positive_int(concurrency, "concurrency")
        self._warned_repeats = self._warned_empty = False

    @property
    def fingerprint(self) -> str:
        """What tells this thinker's thoughts apart in the thought cache (endpoint, model name); no secrets."""
        raise NotImplementedError

    def prompt(self, query: str) -> str:
        """The instruction the model is sent (as a user message): the in-process chat style's instruction."""
        return CHAT_INSTRUCTION.format(query=query)

    def messages(self, query: str) -> list[dict]:
        return [{"role": "user", "content": self.prompt(query)}]

    def think(self, queries: list[str], k: int, config: InferenceSettings, batch_size: int = 32,
              show_progress_bar: bool = False, read: Callable | None = None) -> list[list[str]]:
        """k thoughts per query, in query order. batch_size: queries per step of the progress bar (how many
        requests are in flight is `concurrency`)."""
        if read is not None:
            raise ValueError(f"read= needs the thinker's own KV cache; {self.fingerprint} is a thinker behind an API "
                             "and returns text only (the fused think-and-embed step runs in-process models only)")
        check_positive_int(batch_size, "batch_size")
        if k == 0 or not queries:
            return [[] for _ in queries]
        thoughts: list[list[str]] = []
        with tqdm(total=len(queries), desc="Thinking", disable=not show_progress_bar) as bar:
            for start in range(0, len(queries), batch_size):
                chunk = list(queries[start:start + batch_size])
                made = self._think(chunk, k, config)
                for query, texts in zip(chunk, made):
                    if len(texts) != k:
                        raise ThinkerAPIError(self.fingerprint, f"{self.fingerprint} returned {len(texts)} thoughts "
                                                                f"for {query!r}, {k} were asked for")
                made = [[(t or "").strip() for t in texts] for texts in made]
                self._check_variety(made, k, config)
                thoughts += made
                bar.update(len(chunk))
        return thoughts

    def _sampling(self, config: InferenceSettings) -> str | None:
        """The sampling that should make k thoughts differ, in words; None when identical thoughts are expected."""
        return "its own sampling settings (a temperature above 0, no fixed seed)"

    def _check_variety(self, made: list[list[str]], k: int, config: InferenceSettings) -> None:
        """Warn (once per thinker) when every query of a step got only empty thoughts, or k identical thoughts
        although sampling was asked for: a server that ignores temperature and seed answers so, and nothing else
        would tell."""
        if not any(text for texts in made for text in texts):
            if not self._warned_empty:
                self._warned_empty = True
                warnings.warn(f"{self.fingerprint} wrote only empty thoughts for {len(made)} "
                              f"quer{'y' if len(made) == 1 else 'ies'}, so thinking adds nothing to them (a "
                              "reasoning model may spend max_new_tokens before it answers; raise max_new_tokens)",
                              RepeatedThoughtsWarning, stacklevel=2)
            return
        if k < 2 or self._warned_repeats or not all(len(set(texts)) == 1 for texts in made):
            return
        sampling = self._sampling(config)
        if sampling is None:
            return
        self._warned_repeats = True
        warnings.warn(f"{self.fingerprint}: the {k} thoughts were identical for each of {len(made)} "
                      f"quer{'y' if len(made) == 1 else 'ies'} although the thinker samples with {sampling}, so they "
                      "are worth one thought: the server appears to ignore temperature/seed (`transformers serve` "
                      "samples only when the model's generation_config.json has \"do_sample\": true), or the model "
                      "does not vary at this temperature. With a thought cache, these thoughts are cached: once the "
                      "server samples, use a new cache path or thought_cache=False.", RepeatedThoughtsWarning,
                      stacklevel=2)

    def _think(self, queries: list[str], k: int, config: InferenceSettings) -> list[list[str]]:
        raise NotImplementedError

    def _parallel(self, function, items: list) -> list:
        """[function(item) for item in items], `concurrency` at a time; the first failure is raised."""
        if self.concurrency == 1 or len(items) == 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(min(self.concurrency, len(items))) as pool:
            return list(pool.map(function, items))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint!r})"


class OpenAIThinker(RemoteThinker):
    """Thoughts from an OpenAI-compatible `/chat/completions` endpoint.

    base_url: as for the OpenAI SDK, e.g. http://127.0.0.1:8000/v1 (a URL with no path gets /v1; the full
    .../chat/completions URL and a ?query such as api-version are taken too; user:password@ is sent as basic auth
    and never shown). model: the name the server knows the model by. api_key: sent as a bearer token (default:
    $OPENAI_API_KEY); it is not part of the fingerprint, and errors mask it.
    Sampling comes from the embedder's settings (temperature, top_p, max_new_tokens as max_tokens, and a seed per
    query derived from `seed`, so a server that honours seeds writes the same thoughts again); the server's own
    chat template and prompt window apply. One request asks for all k thoughts (`n=k`); a server that answers
    with fewer choices (`transformers serve`, Ollama) or refuses `n` (llama.cpp, with HTTP 500) is then asked once
    per thought, each with its own seed. Up to `concurrency` requests are in flight; 408/409/429/5xx answers and
    lost connections are retried `retries` times with exponential backoff (a numeric Retry-After is honoured, up
    to 30 s). A server that ignores temperature and seed answers k identical thoughts per query: a
    `RepeatedThoughtsWarning` says so, once."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, concurrency: int = 4,
                 timeout: float = 120.0, retries: int = 3, backoff: float = 0.5, n_per_request: bool | None = None):
        super().__init__(concurrency)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            shown = _USERINFO.sub("", base_url) if isinstance(base_url, str) else base_url
            raise ValueError(f"base_url={shown!r} must be an http(s) URL such as http://127.0.0.1:8000/v1")
        if not isinstance(model, str) or not model:
            raise ValueError(f"model={model!r} must be the (non-empty) name the server serves the model under")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r} must be an int >= 0")
        for name, value in (("timeout", timeout), ("backoff", backoff)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                    name == "timeout" and value == 0):
                raise ValueError(f"{name}={value!r} must be a number of seconds > 0" if name == "timeout"
                                 else f"{name}={value!r} must be a number of seconds >= 0")
        if n_per_request not in (None, True, False):
            raise ValueError(f"n_per_request={n_per_request!r}: use None (find out), True or False")
        parts = urlsplit(base_url)
        host = parts.netloc.rpartition("@")[2]  # user:password@ goes to the server (basic auth), never into texts
        if not host:
            raise ValueError(f"base_url={_USERINFO.sub('', base_url)!r} names no host; use one such as "
                             "http://127.0.0.1:8000/v1")
        # As the OpenAI SDK takes it, with or without a trailing slash; the full endpoint URL is taken as well, and
        # scheme://host[:port] with no path gets the OpenAI convention, /v1.
        path = parts.path.rstrip("/").removesuffix("/chat/completions") or "/v1"
        self.base_url, self.model_name = f"{parts.scheme}://{host}{path}", model  # shown and fingerprinted
        self.url = self.base_url + "/chat/completions"
        self._request_url = urlunsplit((parts.scheme, parts.netloc, path + "/chat/completions", parts.query, ""))
        self._api_key = _api_key(api_key)
        self._secrets = [secret for secret in (self._api_key, parts.password) if secret]
        self.timeout, self.retries, self.backoff = float(timeout), retries, float(backoff)
        self.n_per_request = n_per_request  # None until a reply shows whether the server honours n
        self._n_refusals = 0

    @property
    def fingerprint(self) -> str:
        return f"openai:{self.base_url}|{self.model_name}"

    def _sampling(self, config):
        if config.temperature == 0:  # greedy was asked for: identical thoughts are what it gives
            return None
        seeds = "no seed" if config.seed is None else "a seed per thought"
        return f"temperature={config.temperature:g}, top_p={config.top_p:g} and {seeds}"

    def _think(self, queries, k, config):
        import httpx  # noqa: F401  (checked before any thread starts)
        client = _httpx_client(self.timeout, self.concurrency, self._api_key)
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
        reply = self._post(client, payload, retry_500)
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
            wait = self.backoff * 2 ** attempt
            try:
                response = client.post(self._request_url, json=payload)
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
                    raise self._error(f"{self.url} answered HTTP {response.status_code}{tries} for "
                                      f"model {self.model_name!r}: {_detail(response)}{hint}", response.status_code)
                wait = max(wait, _retry_after(response))
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


def _retry_after(response) -> float:
    try:
        return min(30.0, max(0.0, float(response.headers.get("retry-after", 0))))
    except ValueError:  # an HTTP date: fall back to the backoff
        return 0.0


def _detail(response) -> str:
    """The server's own error message (see `_error_text`), else the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or "(empty body)"
    return _error_text(body)


def _error_text(body) -> str:
    """An error body's message: OpenAI's and llama.cpp's {"error": {"message"}}, Ollama's {"error": "..."}, vLLM's
    {"message"}, FastAPI's {"detail"}; else the body."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for found in (error, body.get("message"), body.get("detail")):
            if found and isinstance(found, (str, list)):
                return str(found)[:300]
    return json.dumps(body)[:300]


def _content(content) -> str:
    """A message's text: a string, none (empty), or a list of content parts ({"type": "text", "text": ...})."""
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content
                       if isinstance(part, dict) and part.get("type", "text") == "text")
    if content is not None and not isinstance(content, str):
        raise TypeError(f"content {content!r} is not text")
    return content or ""


def _httpx_client(timeout: float, concurrency: int, api_key: str | None):
    try:
        import httpx
    except ImportError as error:
        raise ImportError("OpenAIThinker needs httpx: pip install httpx") from error
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(timeout=timeout, headers=headers, limits=httpx.Limits(max_connections=concurrency))


def _public(params: dict) -> dict:
    """Identifying parameters without secrets (named so at any depth, or a URL's user:password@), as JSON-able
    values (others as their str)."""
    public = {}
    for name, value in sorted(params.items()):
        if value is None or _secret(name):
            continue
        if isinstance(value, dict):
            value = _without_secrets(value)
        public[name] = value if isinstance(value, (int, float, bool)) else _USERINFO.sub("", str(value))
    return public


def _secret(name) -> bool:
    name = str(name).lower()  # "tokens" is a count (max_tokens), a "token" a credential
    return any(word in name for word in _SECRET_WORDS) or "token" in name.replace("tokens", "")


def _without_secrets(value):
    if isinstance(value, dict):
        return {name: _without_secrets(item) for name, item in value.items() if not _secret(name)}
    return value


def _fingerprint(prefix: str, obj, params: dict) -> str:
    """A framework model's identity: its class and the public parameters that change what it writes."""
    return f"{prefix}:{type(obj).__module__}.{type(obj).__qualname__}|{json.dumps(_public(params), sort_keys=True)}"


def _per_query(texts: list[str], k: int) -> list[list[str]]:
    return [texts[start:start + k] for start in range(0, len(texts), k)]


def _framework_object(obj, argument: str, class_path: str, what: str, package: str):
    """obj, checked to be an instance of `class_path`, from an optional framework (imported only here)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:  # missing, or too old to have the class
        raise ImportError(f"{argument}= needs {package}: pip install -U {package}") from error
    if not isinstance(obj, cls):
        raise TypeError(f"{argument} must be {what}, got {type(obj).__name__}")
    return obj


class O1ServerThinker(RemoteThinker):
    """Thoughts from an `o1-retriever serve` endpoint (`POST /v1/think`): the server's thinker, with the server's
    sampling settings and seed, so its thoughts match what that server embeds with; the local encoder embeds."""

    def __init__(self, url: str, api_key: str | None = None, *, model: str | None = None, timeout: float = 120.0):
        super().__init__(concurrency=1)  # the server batches concurrent requests itself
        from .server.client import RemoteEmbedder
        self.client = RemoteEmbedder(url, api_key=api_key, model=model, timeout=timeout)

    @property
    def fingerprint(self) -> str:
        return f"o1-serve:{self.client.url}|{self.client.served_name}"

    def prompt(self, query: str) -> str:
        return query  # sent as is: the server wraps it in its own thinking prompt

    def _sampling(self, config):
        return None  # the server's own settings, which may be greedy

    def _think(self, queries, k, config):
        return self.client.think(queries, k=k, batch_size=max(1, len(queries)))


class LangChainThinker(RemoteThinker):
    """Thoughts from a LangChain chat model (`ChatOpenAI`, `ChatOllama`, any `BaseChatModel`), through its own
    `batch` (up to `concurrency` calls at once). The model's own sampling settings apply (the embedder's are not
    passed to it): give it a temperature above 0 and no fixed seed, or its k thoughts per query are the same."""

    def __init__(self, chat_model, *, concurrency: int = 4):
        self.chat_model = _framework_object(chat_model, "chat_model", "langchain_core.language_models.BaseChatModel",
                                            "a LangChain BaseChatModel (such as ChatOpenAI)", "langchain-core")
        super().__init__(concurrency)

    @property
    def fingerprint(self) -> str:
        params = dict(self.chat_model._identifying_params)  # LangChain's own cache identifies a model by these
        for name in ("openai_api_base", "base_url", "api_base"):
            if getattr(self.chat_model, name, None):
                params.setdefault("endpoint", str(getattr(self.chat_model, name)))
        return _fingerprint("langchain", self.chat_model, params)

    def _think(self, queries, k, config):
        from langchain_core.messages import HumanMessage
        inputs = [[HumanMessage(content=self.prompt(query))] for query in queries for _ in range(k)]
        replies = self.chat_model.batch(inputs, config={"max_concurrency": self.concurrency})
        return _per_query([_message_text(reply) for reply in replies], k)


def _message_text(message) -> str:
    text = getattr(message, "text", None)  # langchain-core 1.x: the text blocks of any content layout
    if callable(text):  # langchain-core 0.3 made it a method
        text = text()
    return text if isinstance(text, str) else str(message.content)


class LlamaIndexThinker(RemoteThinker):
    """Thoughts from a LlamaIndex LLM (`OpenAI`, `OpenAILike`, `Ollama`, any `llama_index.core.llms.LLM`), one
    `chat` call per thought, up to `concurrency` at once. The LLM's own sampling settings apply: give it a
    temperature above 0, or its k thoughts per query are the same."""

    def __init__(self, llm, *, concurrency: int = 4):
        self.llm = _framework_object(llm, "llm", "llama_index.core.llms.LLM",
                                     "a LlamaIndex LLM (llama_index.core.llms.LLM)", "llama-index-core")
        super().__init__(concurrency)

    def _think(self, queries, k, config):
        from llama_index.core.llms import ChatMessage
        rows = [query for query in queries for _ in range(k)]
        replies = self._parallel(lambda query: self.llm.chat([ChatMessage(role="user", content=self.prompt(query))]),
                                 rows)
        return _per_query([reply.message.content or "" for reply in replies], k)

    @property
    def fingerprint(self) -> str:
        params = {"model": self.llm.metadata.model_name}
        for name in ("api_base", "base_url", "temperature", "top_p", "max_tokens", "num_output"):
            value = getattr(self.llm, name, None)
            if value is not None and not callable(value):
                params[name] = value
        extra = getattr(self.llm, "additional_kwargs", None)  # where OpenAI(Like) and Ollama LLMs take seed, top_p...
        if isinstance(extra, dict) and extra:
            params["additional_kwargs"] = extra
        return _fingerprint("llama-index", self.llm, params)
