"""Persistent thought cache: SQLite in WAL mode, safe for several processes at once.

Thinking is the expensive step, and sampled thoughts at T=0.1 with a fixed seed are a pure function
of (model, prompt template, query, k, generation parameters, seed); caching them makes repeated
queries and k sweeps cost one embedding pass. A corrupt file is set aside and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import warnings
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS thoughts (key TEXT PRIMARY KEY, thoughts TEXT NOT NULL)"


def cache_key(fingerprint: str, template: str, query: str, k: int, params: dict) -> str:
    blob = json.dumps([fingerprint, template, query, k, params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class ThoughtCache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()  # sqlite connections must not cross threads
        self._open()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        conn.execute("SELECT count(*) FROM thoughts LIMIT 1").fetchone()
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            conn = self._connect()
        except sqlite3.DatabaseError as e:
            self._rebuild(e)
            conn = self._connect()
        self._local.conn = conn
        return conn

    def _rebuild(self, error: Exception) -> None:
        warnings.warn(f"thought cache {self.path} is unreadable ({error}); moving it aside and starting a new one",
                      stacklevel=3)
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                os.replace(p, Path(str(p) + ".corrupt"))

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        return conn if conn is not None else self._open()

    def get_many(self, keys: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start: start + 500]
                rows = self._conn.execute(
                    f"SELECT key, thoughts FROM thoughts WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update((key, json.loads(value)) for key, value in rows)
        except (sqlite3.DatabaseError, json.JSONDecodeError) as e:
            self._local.conn = None
            self._rebuild(e)
            return {}
        return found

    def put_many(self, items: dict[str, list[str]]) -> None:
        rows = [(key, json.dumps(value, ensure_ascii=False)) for key, value in items.items()]
        try:
            with self._conn:  # one transaction: all rows land or none
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany("INSERT OR REPLACE INTO thoughts VALUES (?, ?)", rows)
        except sqlite3.DatabaseError as e:
            # A cache write must never fail a query: warn and go on without caching these.
            warnings.warn(f"could not write to thought cache {self.path}: {e}", stacklevel=2)

    def __len__(self) -> int:
        return self._conn.execute("SELECT count(*) FROM thoughts").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
