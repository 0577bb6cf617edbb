"""The SQLite file under a thought cache (cache.py): what it is, how each thread opens it, how each fault is met.

A cache must never cost a user data or a query, so each fault has its own answer:
- a path that exists and is not a thought cache (any other file, another app's SQLite database, a directory) is
  refused with a ValueError naming it: never renamed, never written;
- busy (another process holds the write lock past `timeout`): that call goes without the cache, one warning;
- cannot write (read-only file or directory, disk full): the cache serves what it can read, or nothing, one warning;
- corrupt (SQLite itself says so, in a file that is ours): moved aside to `<path>.corrupt[.N]`, then rebuilt;
- at the default location (`owned`: a file this package named and nobody else writes), whatever is there and is not a
  thought cache (a header wiped by a crash) is moved aside the same way: a model loads, and caches, regardless.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import warnings
from pathlib import Path

from .cache_faults import APPLICATION_ID, check_is_cache, fault, file_id
from .validation import positive_int_setting

_SCHEMA = "CREATE TABLE IF NOT EXISTS thoughts (key TEXT PRIMARY KEY, thoughts TEXT NOT NULL)"
DEFAULT_MAX_ENTRIES = 100_000


class ThoughtCacheFile:
    """Opens the file (one connection per thread) and answers its faults; `ThoughtCache` adds the rows."""

    def __init__(self, path: str | os.PathLike, *, timeout: float = 10.0, max_entries: int | None = None,
                 owned: bool = False):
        self.path = Path(path).expanduser()
        self.timeout = float(timeout)
        # The rows' bound (ThoughtCache evicts beyond it), checked here so a bad value is refused before the file is
        # touched.
        self.max_entries = positive_int_setting(max_entries, "O1_RETRIEVER_CACHE_MAX_ENTRIES", DEFAULT_MAX_ENTRIES,
                                                "the thought cache's max_entries")
        self.disabled: str | None = None  # why the cache is off (then every call is a miss and writes nothing)
        self.read_only = False
        self._local = threading.local()  # sqlite connections must not cross threads
        self._guard = threading.Lock()  # one thread moves a corrupt file aside
        self._generation = 0  # bumped when the file is moved aside: every thread's connection is then stale
        self.owned = owned
        try:
            check_is_cache(self.path)
        except ValueError as refused:
            if not owned:
                raise
            if self.path.is_dir():
                self._disable(str(refused))
                return
            if not self._move_aside("is not a thought cache (its header is not SQLite's)"):
                return  # off, said once
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._disable(f"cannot create its directory: {e.strerror or e}")
            return
        try:
            self._open()
        except ValueError:  # a SQLite database with other tables
            if not owned:
                raise
            if self._move_aside("is not a thought cache (a SQLite database with other tables)"):
                self._open_or_disable()
        except sqlite3.Error as e:
            kind = fault(e)
            if kind == "corrupt":
                self._set_aside(e)
            elif kind == "busy":  # try again at the first use
                self._warn(f"busy for {self.timeout:g} s ({e}); it is opened again on first use")
            else:
                self._disable(str(e))

    # ---- connections --------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        # A copy (copy.deepcopy, pickle to another process) opens its own connections to the same file: a sqlite
        # connection must not cross threads, let alone processes.
        return {key: value for key, value in self.__dict__.items() if key not in ("_local", "_guard")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _local=threading.local(), _guard=threading.Lock())

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables - {"thoughts"}:
                raise ValueError(f"{str(self.path)!r} is a SQLite database with other tables ({sorted(tables)[:5]}), "
                                 "not a thought cache; refusing to write to it. Pass another path, or "
                                 "thought_cache=False")
            if "thoughts" not in tables or conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                self._set_up(conn)
            conn.execute("SELECT count(*) FROM (SELECT 1 FROM thoughts LIMIT 1)").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_up(self, conn: sqlite3.Connection) -> None:
        """Schema, WAL and our mark; on a file we cannot write, a cache that already has the table is read-only."""
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        except sqlite3.Error as e:
            kind = fault(e)
            if kind not in ("readonly", "busy"):
                raise
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='thoughts'").fetchone():
                raise
            if kind == "readonly":  # busy: the mark waits for a later open; the table is there to read
                self._read_only(e)

    def _open(self) -> sqlite3.Connection:
        self._local.file_id = file_id(self.path)  # the file a failure here is about (None: not created yet)
        conn = self._connect()
        self._local.conn, self._local.generation = conn, self._generation
        self._local.file_id = file_id(self.path)
        return conn

    def _open_or_disable(self) -> sqlite3.Connection | None:
        try:
            return self._open()
        except sqlite3.Error as e:
            self._disable(str(e))
            return None

    @property
    def _conn(self) -> sqlite3.Connection | None:
        if self.disabled is not None:
            return None
        conn = getattr(self._local, "conn", None)
        # Another process that found the file corrupt moved it aside and started a new one: a connection to the old
        # one would write where no one reads.
        if conn is not None and self._local.generation == self._generation and self._same_file():
            return conn
        self._drop_connection()
        try:
            return self._open()
        except ValueError as e:  # the file was replaced by something that is not a cache: leave it alone
            self._disable(str(e))
            return None

    # ---- faults -------------------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        warnings.warn(f"thought cache {self.path}: {message}", UserWarning, stacklevel=4)

    def _disable(self, reason: str) -> None:
        self.disabled = reason
        self._warn(f"cannot be used ({reason}); running without a thought cache")

    def _read_only(self, error: Exception) -> None:
        if not self.read_only:
            self.read_only = True
            self._warn(f"cannot be written ({error}); reading it only, new thoughts are not cached")

    def _handle(self, error: sqlite3.Error, doing: str) -> None:
        kind = fault(error)
        self._drop_connection()
        if kind == "busy":
            self._warn(f"busy for {self.timeout:g} s ({error}); this call goes without it")
        elif kind == "readonly":
            if doing == "write":
                self._read_only(error)
            else:
                self._disable(str(error))
        elif kind == "corrupt":
            self._set_aside(error)
        else:  # e.g. another process dropped the table: warn; the next call reopens (and recreates it)
            self._warn(f"{doing} failed ({error}); this call goes without it")

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _same_file(self) -> bool:
        """Whether the path still holds the file this thread opened last."""
        return file_id(self.path) == getattr(self._local, "file_id", None)

    def _set_aside(self, error: Exception) -> None:
        """Move a corrupt cache aside (`_move_aside`) and open a new one; where another process or thread already
        did (the path holds another file than the one that failed), only open that one: moving it would lose it."""
        with self._guard:
            if not self._same_file():
                self._drop_connection()
                self._open_or_disable()
                return
            if not self.owned:
                try:
                    check_is_cache(self.path)
                except ValueError as refused:  # its header says it is not ours: leave it, run without a cache
                    self._disable(str(refused))
                    return
            self._drop_connection()
            self._generation += 1
            if self._move_aside(f"is corrupt ({error})"):
                self._open_or_disable()

    def _move_aside(self, why: str) -> bool:
        """Move the file (and its WAL) to a free `.corrupt[.N]` name, never over an earlier one. Where it cannot be
        moved (a directory that cannot be written) the cache is off instead: False."""
        n, target = 0, Path(f"{self.path}.corrupt")
        while any(Path(f"{target}{s}").exists() for s in ("", "-wal", "-shm")):
            n += 1
            target = Path(f"{self.path}.corrupt.{n}")
        try:
            for suffix in ("", "-wal", "-shm"):
                p = Path(f"{self.path}{suffix}")
                if p.exists():
                    os.replace(p, Path(f"{target}{suffix}"))
        except OSError as e:
            self._disable(f"{why.removeprefix('is ')}, and cannot be moved aside: {e.strerror or e}")
            return False
        self._warn(f"{why}; moved to {target} and starting a new one")
        return True
