"""The models O1 embedding functions load, one per process for each way of loading it, the arguments they share with
every integration, and the check that a function passed to plain Chroma embeds with its collection's model.

Chroma checks a function passed to `client.get_collection(name, embedding_function=...)` by `name()` alone (chromadb
1.x: `validate_embedding_function_conflict_on_get`), and calls `validate_config_update` only on
`collection.modify(configuration=...)`: no hook tells a function which collection it is opened for. So an O1 function
looks, on each embedding call, for the collection whose `_embed` calls it, and checks that collection's model record
(`calling_collection`, `check_collection_model`); a Chroma that calls it otherwise leaves the check out.
"""
from __future__ import annotations

import json
import sys
import threading
import warnings

from .collection_record import check_model, model_record
from .embedder import O1Embedder
from .model_source import ModelSource
from .validation import check_k

_loaded: dict[str, O1Embedder] = {}
_lock = threading.Lock()


def num_thoughts_arg(num_thoughts: int | None, k: int | None, where: str, default: int = 3) -> int:
    """The thoughts per query from `num_thoughts`, or from the older name `k` (warned). One naming rule for every
    integration: `num_thoughts` is thoughts per query; documents per query keep the framework's own word
    (LangChain `k`, LlamaIndex `similarity_top_k`, Chroma `n_results`). Only the engine API says `k`, as the paper."""
    if k is not None:
        if num_thoughts is not None and num_thoughts != k:
            raise ValueError(f"{where}: got num_thoughts={num_thoughts!r} and k={k!r}; pass num_thoughts only "
                             "(k is its older name)")
        warnings.warn(f"{where}(k=...) is now {where}(num_thoughts=...): in the integrations `k` would mean documents "
                      "(LangChain's convention), so thoughts per query are num_thoughts everywhere",
                      DeprecationWarning, stacklevel=3)
        num_thoughts = k
    return check_k(default if num_thoughts is None else num_thoughts, "num_thoughts")


def _load_key(source: ModelSource, options: dict) -> str:
    return json.dumps({"source": source.as_dict(), "options": options}, sort_keys=True)


def _shared_embedder(source: ModelSource, options: dict) -> O1Embedder:
    if source.from_parts:
        raise ValueError(f"this collection's {source.kind} model was assembled from parts in one process "
                         f"({source.as_dict()}, e.g. by O1Embedder.composite()); rebuild it yourself and pass "
                         "embedding_function=O1EmbeddingFunction(embedder) to get_collection")
    key = _load_key(source, options)
    with _lock:
        if key not in _loaded:
            _loaded[key] = O1Embedder.from_pretrained(source.path, **options)
        return _loaded[key]


def _config_thoughts(config: dict) -> int:
    # collections recorded before the naming rule wrote "k"
    return config.get("num_thoughts", config.get("k", 3))


def calling_collection(function, depth: int = 8):
    """The chromadb collection (sync or async) that is embedding with `function` now, found among the callers'
    frames; None when `function` is called some other way (directly, by LangChain, by a rebuilt configuration)."""
    from chromadb.api.models.CollectionCommon import CollectionCommon
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        caller = frame.f_locals.get("self")
        if isinstance(caller, CollectionCommon):
            return caller if getattr(caller, "_embedding_function", None) is function else None
        frame = frame.f_back
    return None


def check_collection_model(function, checked: set) -> None:
    """Refuse (ValueError naming both models) to embed for a collection built with another model than `function`'s;
    each collection is checked once per function (`checked` holds their ids)."""
    collection = calling_collection(function)
    if collection is None or collection.id in checked:
        return
    record = model_record(collection)
    if record is not None and record.get("fingerprint"):  # a function recorded unloaded names no weights to compare
        check_model(f"collection {collection.name!r} (opened with embedding_function={function!r})", record,
                    function.embedder)
    checked.add(collection.id)
