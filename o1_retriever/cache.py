"""Persistent thought cache: SQLite in WAL mode, safe for several processes at once.

Thinking is the expensive step, and sampled thoughts with a fixed seed are a pure function of (model, prompt
template, query, k, generation parameters, seed); caching them makes repeated queries and k sweeps cost one
embedding pass. A cache must never cost a user data or a query: cache_file.py holds the file and the answer to each
fault (busy, cannot write, corrupt, not a cache); a row that does not decode to k strings is dropped alone.
At most `max_entries` rows are kept (`$O1_RETRIEVER_CACHE_MAX_ENTRIES`, default 100,000: about 50 MB of short
thoughts); the oldest written go first. `o1-retriever cache info|clear` shows and empties it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import warnings
from pathlib import Path

# APPLICATION_ID, DEFAULT_MAX_ENTRIES and check_is_cache are unused here: callers import them from this module.
from .cache_file import APPLICATION_ID, DEFAULT_MAX_ENTRIES, ThoughtCacheFile, check_is_cache, fault  # noqa: F401


def cache_key(fingerprint: str, template: str, query: str, k: int, params: dict) -> str:
    blob = json.dumps([fingerprint, template, query, k, params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def open_cache(spec, default_dir) -> "ThoughtCache | None":
    """The embedder's cache from its `thought_cache` argument: True (`thoughts.sqlite` in `default_dir()`), a path,
    or False/None (no cache). A default directory that cannot be created costs the cache (one warning), not the
    model, and a default file that is not a cache is moved aside; a path the user chose that holds something else is
    refused (ValueError)."""
    if spec is None or spec is False:
        return None
    if spec is True:
        try:
            spec = default_dir() / "thoughts.sqlite"
        except OSError as e:
            warnings.warn(f"thought cache directory cannot be created ({e}); running without a thought cache",
                          UserWarning, stacklevel=3)
            return None
        return ThoughtCache(spec, owned=True)  # our own file: one damaged past reading is moved aside, not refused
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"thought_cache must be True, False or a file path, got {type(spec).__name__}: {spec!r}")
    return ThoughtCache(spec)


class ThoughtCache(ThoughtCacheFile):
    """Thoughts by `cache_key`: read and written in batches, bounded to `max_entries` rows, shown and emptied by
    `o1-retriever cache`. Opening the file and meeting its faults: `ThoughtCacheFile` (cache_file.py)."""

    def get_many(self, keys: list[str], k: int | None = None) -> dict[str, list[str]]:
        """The cached thoughts among `keys`. A row that is not a list of (k) strings is dropped, alone."""
        found: dict[str, list[str]] = {}
        bad: list[str] = []
        try:
            conn = self._conn
            if conn is None:
                return {}
            for start in range(0, len(keys), 500):
                chunk = keys[start: start + 500]
                rows = conn.execute(
                    f"SELECT key, thoughts FROM thoughts WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                for key, value in rows:
                    thoughts = _decode(value, k)
                    if thoughts is None:
                        bad.append(key)
                    else:
                        found[key] = thoughts
        except sqlite3.Error as e:
            self._handle(e, "read")
            return {}
        if bad:
            self._warn(f"dropped {len(bad)} malformed row(s) (not a list of {k if k is not None else 'any'} "
                       "strings); they are thought about again")
            self._delete(bad)
        return found

    def _delete(self, keys: list[str]) -> None:
        if self.read_only:
            return
        try:
            conn = self._conn
            if conn is not None:
                conn.executemany("DELETE FROM thoughts WHERE key = ?", [(key,) for key in keys])
        except sqlite3.Error as e:
            self._handle(e, "write")

    def put_many(self, items: dict[str, list[str]]) -> None:
        """Store all rows in one transaction (all land or none), then evict the oldest beyond max_entries.
        A failed write never fails the query that made the thoughts."""
        if not items or self.read_only:
            return
        rows = [(key, json.dumps(value, ensure_ascii=False)) for key, value in items.items()]
        try:
            conn = self._conn
            if conn is None:
                return
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT OR REPLACE INTO thoughts VALUES (?, ?)", rows)
                # INSERT OR REPLACE gives a rewritten row a new rowid: rowid order is write order.
                conn.execute("DELETE FROM thoughts WHERE rowid IN (SELECT rowid FROM thoughts ORDER BY rowid "
                             "LIMIT max(0, (SELECT count(*) FROM thoughts) - ?))", (self.max_entries,))
        except sqlite3.Error as e:
            self._handle(e, "write")

    def __len__(self) -> int:
        conn = self._conn
        return 0 if conn is None else conn.execute("SELECT count(*) FROM thoughts").fetchone()[0]

    def info(self) -> dict:
        """Path, rows, bytes on disk (database + WAL), bound, and state: what `o1-retriever cache info` prints."""
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        state = "disabled" if self.disabled else "read-only" if self.read_only else "ok"
        return {"path": str(self.path), "entries": len(self), "bytes": size, "max_entries": self.max_entries,
                "state": state}

    def clear(self) -> int:
        """Delete every row (and give the space back); returns how many there were."""
        conn = self._conn
        if conn is None:
            raise ValueError(f"thought cache {self.path} cannot be used: {self.disabled}")
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                n = conn.execute("SELECT count(*) FROM thoughts").fetchone()[0]
                conn.execute("DELETE FROM thoughts")
        except sqlite3.OperationalError as e:
            if fault(e) != "busy":
                raise
            raise ValueError(f"thought cache {self.path} is locked by another process (one thinking or clearing "
                             "it); nothing was removed: retry when it finishes") from e
        try:  # space back to the file system: needs no other reader mid-transaction, so best effort
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        return n

    def close(self) -> None:
        self._drop_connection()


def _decode(value: str, k: int | None) -> list[str] | None:
    """A row's thoughts, or None when it is not a JSON list of (k) strings."""
    try:
        thoughts = json.loads(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(thoughts, list) or not all(isinstance(t, str) for t in thoughts):
        return None
    return thoughts if k is None or len(thoughts) == k else None
