"""Thinkers that are a LangChain chat model or a LlamaIndex LLM: the framework's own object writes the thoughts, with
its own sampling settings; the local encoder embeds them. The thought cache keys on the object's class and public
parameters (never its secrets)."""
from __future__ import annotations

import importlib
import json
import re

from .remote_thinking import USERINFO, RemoteThinker, _per_query

_SECRET_WORDS = ("key", "secret", "password", "auth", "header")  # and "token" (see _secret)


def _public(params: dict) -> dict:
    """Identifying parameters without secrets (named so at any depth, or a URL's user:password@), as JSON-able
    values (others as their str)."""
    public = {}
    for name, value in sorted(params.items()):
        if value is None or _secret(name):
            continue
        if isinstance(value, dict):
            value = _without_secrets(value)
        public[name] = value if isinstance(value, (int, float, bool)) else USERINFO.sub("", str(value))
    return public


def _secret(name) -> bool:
    name = str(name).lower()  # "tokens" is a count (max_tokens), a "tokenizer" a model part, a "token" a credential
    return any(word in name for word in _SECRET_WORDS) or re.search(r"token(?!s|izer)", name) is not None


def _without_secrets(value):
    if isinstance(value, dict):
        return {name: _without_secrets(item) for name, item in value.items() if not _secret(name)}
    return value


def _fingerprint(prefix: str, obj, params: dict) -> str:
    """A framework model's identity: its class and the public parameters that change what it writes."""
    return f"{prefix}:{type(obj).__module__}.{type(obj).__qualname__}|{json.dumps(_public(params), sort_keys=True)}"


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


class LangChainThinker(RemoteThinker):
    """Thoughts from a LangChain chat model (`ChatOpenAI`, `ChatOllama`, any `BaseChatModel`), through its own
    `batch` (up to `concurrency` calls at once). The model's own sampling settings apply (the embedder's are not
    passed to it): give it a temperature above 0 and no fixed seed, or its k thoughts per query are the same. LangChain's
    LLM cache is bypassed when k > 1 (it would answer each query's k requests with one reply)."""

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
        # LangChain's LLM cache (the model's own, or set_llm_cache's) answers a prompt asked again with its first
        # reply: k > 1 thoughts would be one thought k times, so those calls bypass it.
        model = self.chat_model if k == 1 else self.chat_model.model_copy(update={"cache": False})
        replies = model.batch(inputs, config={"max_concurrency": self.concurrency})
        return _per_query([_message_text(reply) for reply in replies], k)


def _message_text(message) -> str:
    text = getattr(message, "text", None)  # langchain-core 1.x: the text blocks of any content layout
    if callable(text) and not isinstance(text, str):  # 0.3's method; 1.x's str is callable too, with a deprecation
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
