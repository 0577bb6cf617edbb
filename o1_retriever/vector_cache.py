"""In-process cache of finished query vectors, so a repeated query costs no model forward at all.

The thought cache (`cache.py`) saves the thinking, but a cached query still re-embeds its k `query + thought`
texts. This cache keeps the aggregated vector and the thoughts behind it, keyed by everything they depend on:
the embedder's fingerprint (thinker and encoder weights), every inference setting, k, the aggregation and query
weight of the call, and the query text. It is only consulted where a repeat would get the same answer anyway: a
fixed seed, or a thought cache that pins the thoughts.

Least recently used entries go first past `max_entries` (`$O1_RETRIEVER_VECTOR_CACHE_ENTRIES`, default 10,000:
about 15 MB of 384-d vectors). Thread-safe; entries are returned as copies, so a caller cannot alter them.
"""
from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections import OrderedDict

import numpy as np

from .validation import positive_int_setting

DEFAULT_ENTRIES = 10_000
LONGEST_KEPT_WHOLE = 512  # characters of a query kept as its own key


class QueryVectorCache:
    """query -> (vector, thoughts) for one embedder's settings; see the module docstring."""

    def __init__(self, max_entries: int | None = None):
        self.max_entries = positive_int_setting(max_entries, "O1_RETRIEVER_VECTOR_CACHE_ENTRIES", DEFAULT_ENTRIES,
                                                "the vector cache's max_entries")
        self._entries: OrderedDict[tuple, tuple[np.ndarray, list[str]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __getstate__(self) -> dict:
        # A copy (copy.deepcopy, pickle to another process) gets the entries and a lock of its own.
        with self._lock:
            state = self.__dict__ | {"_entries": OrderedDict(self._entries)}
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @staticmethod
    def scope(fingerprint: str, settings: dict, k: int, aggregation: str, query_weight) -> str:
        """What every key of one call shares (everything but the query)."""
        # Interned: every entry of one scope then holds the same string, not a copy of it per query.
        return sys.intern(json.dumps([fingerprint, settings, k, aggregation, query_weight], sort_keys=True,
                                     default=str))

    @staticmethod
    def _key(scope: str, query: str) -> tuple:
        # A long query is kept by its digest: 10,000 held multi-megabyte queries would otherwise be gigabytes of keys.
        if len(query) <= LONGEST_KEPT_WHOLE:
            return scope, query
        return scope, hashlib.sha256(query.encode("utf-8", "surrogatepass")).digest()

    def get_many(self, scope: str, queries: list[str]) -> dict[str, tuple[np.ndarray, list[str]]]:
        out = {}
        with self._lock:
            for q in queries:
                key = self._key(scope, q)
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    out[q] = (entry[0].copy(), list(entry[1]))
            self.hits += len(out)
            self.misses += len(set(queries)) - len(out)
        return out

    def put_many(self, scope: str, items: dict[str, tuple[np.ndarray, list[str]]]) -> None:
        with self._lock:
            for q, (vector, thoughts) in items.items():
                key = self._key(scope, q)
                self._entries[key] = (np.array(vector, dtype=np.float32), list(thoughts))
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"QueryVectorCache({len(self)}/{self.max_entries} entries, {self.hits} hits, {self.misses} misses)"
