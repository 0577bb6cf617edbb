"""A chromadb `EmbeddingFunction` that thinks before it embeds queries.

    import chromadb
    from o1_retriever.chroma import O1EmbeddingFunction
    collection = client.create_collection("docs", embedding_function=O1EmbeddingFunction())
    collection.add(ids=[...], documents=[...])          # passages: embedded directly
    collection.query(query_texts=["..."], n_results=5)  # queries: k thoughts, then embedded

The class is registered with Chroma under `name()` by Chroma's own `@register_embedding_function`, and its
`get_config()` records how to load the model, so `client.get_collection("docs")` in a later process rebuilds it.
Chroma has no plugin discovery: a process must import this module (or anything that imports it: `o1_retriever.index`
and every o1 integration do) before it reads an O1 collection. Chroma rebuilds the function every time it reads the
collection's configuration, so loaded models are kept in a per-process registry: one model per configuration, never a
second copy.

One contract for every O1 collection: its configuration records this function, and the function's config is the
one place that names the model (`fingerprint`, `dim`, `name`, `encoder_dtype`; read by `model_record`).
`open_collection` creates or opens such a collection (O1Index, the LlamaIndex retriever and the LangChain helper all
use it), and `check_model` refuses a different model with the same message everywhere, including when a rebuilt
function loads its model. The record and the check live in collection_record.py; import them from here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

# LEGACY_KEYS, _encoder_dtype and mismatch are unused here: callers import them from this module, as before.
from .collection_record import (DEFAULT_MODEL_NAME, LEGACY_KEYS, NAME, _encoder_dtype, _record_of,  # noqa: F401
                                check_model, mismatch, model_record)
# num_thoughts_arg and _loaded are imported from this module by the integrations and tests, as before.
from .chroma_loading import (_config_thoughts, _load_key, _loaded, _lock, _shared_embedder,  # noqa: F401
                             check_collection_model, num_thoughts_arg)
from .device import dtype_name, resolve_dtype
from .embedder import O1Embedder
from .model_source import ModelSource, legacy_source
from .server.client import RemoteEmbedder
from .settings import LOAD_OPTIONS
from .validation import check_k, check_positive_int

@register_embedding_function
class O1EmbeddingFunction(EmbeddingFunction[Documents]):
    """Documents are embedded as passages; `embed_query` writes k thoughts per query first.

    Pass an existing `O1Embedder` (it is used as is), or a model path / hub id (None: the bundled
    default model) plus `from_pretrained` options such as device, dtype, quantization, thought_cache,
    max_new_tokens. `num_thoughts` is the number of thoughts per query (0: no thinking; `k` is its older name);
    `collection.query(n_results=...)` is the number of documents. `load=False` defers
    loading the model to the first text that needs embedding (how Chroma rebuilds it from a config:
    searching a reopened collection by vector then never loads a model).
    """

    def __init__(self, embedder: O1Embedder | None = None, *, model: str | None = None,
                 num_thoughts: int | None = None, batch_size: int = 32, load: bool = True, k: int | None = None,
                 url: str | None = None, api_key: str | None = None, **options: Any):
        self.num_thoughts = num_thoughts_arg(num_thoughts, k, "O1EmbeddingFunction")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        unknown = sorted(set(options) - set(LOAD_OPTIONS))
        if unknown:
            raise TypeError(f"O1EmbeddingFunction got unknown options {unknown}; allowed: {list(LOAD_OPTIONS)}")
        self.url, self._remote = None, None
        self._checked: set = set()  # ids of the collections found embedding with it whose model record matches
        if url is not None or isinstance(embedder, RemoteEmbedder):
            # An `o1-retriever serve` server embeds: `model` is its served name; the key is never recorded (a
            # rebuilt function reads $O1_RETRIEVER_API_KEY).
            if options or (embedder is not None and (url is not None or model is not None)):
                raise ValueError("with a server the server's model embeds: pass url= (and model=, its served name) "
                                 f"or a RemoteEmbedder, not both, and no load options (got {sorted(options)})")
            self._remote = embedder or RemoteEmbedder(url, api_key=api_key, model=model)
            self.url, self.model, self.options, self.source = self._remote.url, self._remote.model, {}, None
            self._embedder, self._fingerprint, self._record = None, None, {}
            if load:
                self.embedder  # noqa: B018  (reads the server's /health now: a wrong url fails here)
        elif embedder is not None:
            if not isinstance(embedder, O1Embedder):
                raise TypeError(f"embedder must be an o1_retriever.O1Embedder, got {type(embedder).__name__}")
            if model is not None or options:
                raise ValueError("pass either an existing embedder or a model path with options, not both")
            self.source, self.options = embedder.source, embedder.load_options()
            self.model = self.source.path
            self._embedder, self._fingerprint = embedder, embedder.fingerprint
            self._record = _record_of(embedder)
            with _lock:  # a reopened collection in this process reuses this instance
                # the instance passed last serves rebuilds (an equal one registered earlier gives the same vectors)
                _loaded[_load_key(self.source, self.options)] = embedder
        else:
            if model is not None and not isinstance(model, (str, Path)):
                raise TypeError(f"model must be a path or hub id (str), got {type(model).__name__}")
            self.model = None if model is None else str(model)
            self.source = ModelSource.of_path(self.model)
            self.options = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
            self._embedder, self._fingerprint, self._record = None, None, {}
            if load:
                self.embedder  # noqa: B018  (load now: a bad path fails here, not at the first query)

    @property
    def embedder(self) -> O1Embedder:
        if self._embedder is None:
            loaded = self._remote if self._remote is not None else _shared_embedder(self.source, self.options)
            if self._fingerprint:  # rebuilt from a collection's config: the loaded weights must be the ones it used
                record = {"fingerprint": self._fingerprint, "name": self.model or DEFAULT_MODEL_NAME, **self._record}
                check_model("this collection", record, loaded)
            self._embedder, self._fingerprint, self._record = loaded, loaded.fingerprint, _record_of(loaded)
        return self._embedder

    def __call__(self, input: Documents) -> Embeddings:
        # One str is one document (list() would embed each character); the embedder names a None or non-str input.
        documents = [input] if isinstance(input, str) else input
        if isinstance(documents, (list, tuple)) and not documents:  # Chroma's wrapper fails on [] with an IndexError
            raise ValueError("O1EmbeddingFunction got no documents (an empty list): pass at least one text")
        check_collection_model(self, self._checked)
        vectors = self.embedder.encode_documents(documents, batch_size=self.batch_size)
        return list(vectors)

    def embed_query(self, input: Documents) -> Embeddings:
        queries = [input] if isinstance(input, str) else input
        check_collection_model(self, self._checked)
        vectors = self.embedder.encode_queries(queries, k=self.num_thoughts, batch_size=self.batch_size)
        return list(vectors)

    def think(self, queries) -> list:
        """The thoughts `embed_query` uses (same seed and cache), for display."""
        return self.embedder.think(queries, k=self.num_thoughts, batch_size=self.batch_size)

    @property
    def k(self) -> int:
        """The older name of `num_thoughts`."""
        return self.num_thoughts

    @staticmethod
    def name() -> str:
        return NAME

    def default_space(self) -> Space:
        # Documents are unit vectors but mean-aggregated queries are not: cosine ranks correctly.
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model, "num_thoughts": self.num_thoughts, "batch_size": self.batch_size,
                "options": dict(self.options), **({"url": self.url} if self.url is not None else {}),
                **({"source": self.source.as_dict()} if self.source is not None else {}),
                "fingerprint": self._fingerprint, **self._record}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "O1EmbeddingFunction":
        # Chroma rebuilds the function whenever it reads the collection's configuration: load lazily.
        source = None
        options = dict(config.get("options", {}))
        if config.get("url") is None:  # collections recorded before ModelSource carry only a name: read it
            source = (ModelSource.from_dict(config["source"]) if "source" in config
                      else legacy_source(config.get("model")))
            if source.kind == "composite" and config.get("encoder_dtype") and "encoder_dtype" not in options:
                # Before 2026-12-06 a composite's encoders ran in fp32 whatever its dtype: load them as recorded
                # (named only where they differ, as load_options does, so an equal load shares its instance).
                recorded = dtype_name(resolve_dtype(config["encoder_dtype"], torch.device("cpu")))
                if recorded != options.get("dtype"):
                    options["encoder_dtype"] = recorded
        function = O1EmbeddingFunction(model=config.get("model"), url=config.get("url"),
                                       num_thoughts=_config_thoughts(config),
                                       batch_size=config.get("batch_size", 32), load=False, **options)
        if source is not None:
            function.source = source
        function._fingerprint = config.get("fingerprint")
        function._record = {key: config[key] for key in ("name", "dim", "encoder_dtype") if config.get(key) is not None}
        return function

    def is_legacy(self) -> bool:
        # Chroma's default check builds a second instance from the config; ours is never legacy.
        return False

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        check_k(_config_thoughts(config))
        check_positive_int(config.get("batch_size", 32), "batch_size")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        # Stored vectors come from one model loaded one way; swapping it would silently mix embedding spaces. The
        # same model loaded another way (dtype, quantization) keeps its path but not its fingerprint. chromadb 1.x
        # calls this only after it has stored the new configuration, so the error says how to put the old one back.
        changed = [key for key in ("model", "source") if key in new_config and new_config[key] != old_config.get(key)]
        changed += [key for key in ("fingerprint", "dim", "encoder_dtype")
                    if None not in (old_config.get(key), new_config.get(key)) and new_config[key] != old_config[key]]
        if changed:
            what = ", ".join(f"{key} {old_config.get(key)!r} -> {new_config.get(key)!r}" for key in changed)
            raise ValueError(f"the model of an O1 collection cannot change ({what}); re-embed into a new collection. "
                             "Chroma stored the new function before this check: record the model it was built with "
                             "again, collection.modify(configuration={'embedding_function': "
                             "O1EmbeddingFunction(that_embedder)}) (stored even where this check refuses it again)")

    def __repr__(self) -> str:
        loaded = f"dim={self._embedder.dim}" if self._embedder is not None else "not loaded yet"
        return f"O1EmbeddingFunction(model={self.model!r}, num_thoughts={self.num_thoughts}, {loaded})"


def _names(client) -> list[str]:
    return sorted(c if isinstance(c, str) else c.name for c in client.list_collections())


def open_collection(client, name: str, embedder: O1Embedder, num_thoughts: int = 3, create: bool = True, where=None):
    """The Chroma collection `name`, created (cosine space, this function recorded) or opened for `embedder`.

    Opening checks the model it records (`check_model`); a collection that records no O1 model is refused, not
    adopted: its vectors come from something else. Collections written by O1Index before this contract (record in
    the metadata, Chroma's 'default' function recorded) open as they are, so `query_texts` needs an O1 function
    passed explicitly there."""
    if name not in _names(client):
        if not create:  # searching: a mistyped name must not leave an empty collection behind
            raise ValueError(f"no collection {name!r} in {str(where or 'this client')!r}; it has {_names(client)}")
        function = O1EmbeddingFunction(embedder, num_thoughts=num_thoughts)
        collection = client.get_or_create_collection(name, embedding_function=function,
                                                     configuration={"hnsw": {"space": "cosine"}})
    else:
        collection = client.get_collection(name, embedding_function=None)  # read the record before choosing
    label = f"collection {name!r}"
    record = model_record(collection)
    if record is None:
        function = (collection.configuration_json or {}).get("embedding_function") or {}
        raise ValueError(f"{label} records no O1 model (its embedding function: {function.get('name')!r}): it was "
                         "not made by o1-retriever. Index into a new collection.")
    check_model(label, record, embedder)
    if ((collection.configuration_json or {}).get("embedding_function") or {}).get("name") != NAME:
        return collection  # a pre-contract collection: Chroma refuses to swap its 'default' function
    return client.get_collection(name, embedding_function=O1EmbeddingFunction(embedder, num_thoughts=num_thoughts))


__all__ = ["O1EmbeddingFunction", "check_model", "model_record", "open_collection"]
