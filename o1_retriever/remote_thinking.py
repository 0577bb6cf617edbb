"""Thinkers that run elsewhere: an OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama, `transformers serve`,
a hosted API), a LangChain chat model or a LlamaIndex LLM (those two: `framework_thinkers.py`) writes the thoughts;
the local encoder embeds them.

    from o1_retriever import O1Embedder, OpenAIThinker
    emb = O1Embedder.composite(thinker=OpenAIThinker("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-0.5B-Instruct"))

Each is asked in the chat style, with the same instruction an in-process chat-prompted thinker gets
(`formatting.CHAT_INSTRUCTION`), as one user message; the server applies its model's chat template. No weights are
here to hash, so the thought cache keys on `fingerprint`: the endpoint and the model name (for the framework
objects, also their own sampling parameters, which are the ones that apply).
"""
from __future__ import annotations

import json
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from tqdm.auto import tqdm

from .formatting import CHAT_INSTRUCTION
from .settings import InferenceSettings
from .validation import check_positive_int

USERINFO = re.compile(r"(?<=://)[^/@\s]+@")  # user:password@ in a URL


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

    def _repeated(self, made: list[list[str]], k: int, config: InferenceSettings) -> bool:
        """Every query got k > 1 identical thoughts although sampling was asked for."""
        return k >= 2 and all(len(set(texts)) == 1 for texts in made) and self._sampling(config) is not None

    def cacheable(self, thoughts: list[str], k: int, config: InferenceSettings) -> bool:
        """Whether one query's thoughts go into the thought cache: not when they are all empty or k identical under
        sampling (what the warnings below are about), so a server fixed since writes them anew."""
        return any(thoughts) and not self._repeated([thoughts], k, config)

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
        if self._warned_repeats or not self._repeated(made, k, config):
            return
        self._warned_repeats = True
        warnings.warn(f"{self.fingerprint}: the {k} thoughts were identical for each of {len(made)} "
                      f"quer{'y' if len(made) == 1 else 'ies'} although the thinker samples with "
                      f"{self._sampling(config)}, so they are worth one thought: {self._repeat_cause()}. They are not "
                      "kept in the thought cache.", RepeatedThoughtsWarning, stacklevel=2)

    def _repeat_cause(self) -> str:
        """Why k thoughts come back identical, and what to change."""
        return ("its own settings apply, not the embedder's: give the model a temperature above 0 and no fixed seed, "
                "or it does not vary at its temperature")

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


def _per_query(texts: list[str], k: int) -> list[list[str]]:
    return [texts[start:start + k] for start in range(0, len(texts), k)]


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


def __getattr__(name: str):
    """`remote_thinking.OpenAIThinker` / `LangChainThinker` / `LlamaIndexThinker`, as older code imports them."""
    if name == "OpenAIThinker":
        from .openai_thinker import OpenAIThinker
        return OpenAIThinker
    if name in ("LangChainThinker", "LlamaIndexThinker"):  # they live in framework_thinkers.py
        from . import framework_thinkers
        return getattr(framework_thinkers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
