"""Issue 27, findings 2-5: the thought cache never destroys what it did not create, tells busy from corrupt,
drops a bad row alone, checks what it returns, runs without a cache where it cannot write, and stays bounded.

The busy case uses a real second process holding SQLite's write lock.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from o1_retriever import O1Embedder
from o1_retriever.cache import ThoughtCache
from o1_retriever.cli import main as cli


def _load(model_dir, cache, **kw):
    # vector_cache off: a repeated query must reach the thought cache under test, not the finished vectors
    return O1Embedder.from_pretrained(str(model_dir), device="cpu", dtype="fp32", thought_cache=cache,
                                      max_new_tokens=4, vector_cache=False, **kw)


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_users_file_is_refused_and_left_untouched(tiny_o1_dir, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes: do not lose these\n" * 50)
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=r"notes\.txt.*not a SQLite database"):
        _load(tiny_o1_dir, notes)
    assert _files(tmp_path) == before  # not renamed, not rewritten, nothing added beside it


def test_another_apps_sqlite_database_is_refused(tiny_o1_dir, tmp_path):
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=r"app\.db.*other tables.*users"):
        _load(tiny_o1_dir, db)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA application_id=1234")
    conn.commit()
    conn.close()
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=r"another application's SQLite database"):
        _load(tiny_o1_dir, db)
    assert _files(tmp_path) == before


def test_a_directory_is_refused(tiny_o1_dir, tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        _load(tiny_o1_dir, tmp_path)


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT OR REPLACE INTO thoughts VALUES ('held', '[\\"x\\"]')")
print("locked", flush=True)
time.sleep(60)
"""


def test_busy_is_not_corrupt_the_call_goes_without_the_cache(tiny_o1_dir, tmp_path):
    path = tmp_path / "t.sqlite"
    emb = _load(tiny_o1_dir, path)
    emb.encode_queries(["protein cell"], k=1)  # one row in, so reads have something to find
    emb.thought_cache = ThoughtCache(path, timeout=0.5)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = emb.encode_queries(["protein cell", "river ocean"], k=1, return_thoughts=True)
        messages = [str(w.message) for w in caught]
        assert len(messages) == 1 and "busy" in messages[0], messages
        assert len(r.thoughts) == 2 and r.thoughts[0] == emb.think("protein cell", k=1)  # the hit was still read
        assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []  # nothing moved aside
    finally:
        holder.kill()
        holder.wait()
    emb.encode_queries(["river ocean"], k=1)  # the lock is gone: writes land again, in the same file
    assert emb.cached_fraction(["protein cell", "river ocean"], k=1) == 1.0
    assert len(ThoughtCache(path)) == 2


def test_bad_rows_are_dropped_alone_and_shapes_are_checked(tiny_o1_dir, tmp_path):
    path = tmp_path / "t.sqlite"
    emb = _load(tiny_o1_dir, path)
    queries = ["protein cell", "river ocean", "insulin blood", "war city", "solar plant"]
    want = emb.think(queries, k=1)
    keys = emb._keys(queries, 1)
    conn = sqlite3.connect(path, isolation_level=None)
    for key, value in zip(keys[1:], ["{not json", json.dumps("a string"), json.dumps({"a": 1}),
                                     json.dumps(["one", "two", "three"])]):
        conn.execute("UPDATE thoughts SET thoughts = ? WHERE key = ?", (value, key))
    conn.close()
    with pytest.warns(UserWarning, match="dropped 4 malformed row"):
        got = emb.think(queries, k=1)
    assert got == want and all(len(ts) == 1 and isinstance(ts[0], str) for ts in got)
    assert len(emb.thought_cache) == 5  # the good row kept, the four bad ones rewritten


def test_a_cache_that_cannot_be_created_costs_only_the_cache(tiny_o1_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="running without a thought cache"):
        emb = _load(tiny_o1_dir, blocker / "cache" / "t.sqlite")
    assert emb.thought_cache.disabled and emb.encode_queries("protein", k=1).shape == (emb.dim,)
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(blocker / "cache"))  # the default location, unwritable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = _load(tiny_o1_dir, True)
        emb.encode_queries(["protein", "river"], k=1)
    assert emb.thought_cache is None and len(caught) == 1 and "without a thought cache" in str(caught[0].message)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_an_existing_directory_that_cannot_be_written(tiny_o1_dir):
    with pytest.warns(UserWarning, match="running without a thought cache"):
        emb = _load(tiny_o1_dir, Path("/proc/self/o1-thoughts.sqlite"))
    assert emb.encode_queries("protein", k=1).shape == (emb.dim,)


def test_corrupt_file_moves_aside_without_overwriting_an_earlier_one(tmp_path):
    path = tmp_path / "t.sqlite"
    (tmp_path / "t.sqlite.corrupt").write_text("an earlier casualty")
    cache = ThoughtCache(path)
    cache.put_many({f"k{i}": ["t"] for i in range(300)})
    cache.close()
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    data = bytearray(path.read_bytes())
    data[100:] = b"\x00\xff" * ((len(data) - 100) // 2)
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"corrupt.*t\.sqlite\.corrupt\.1"):
        cache = ThoughtCache(path)
    assert (tmp_path / "t.sqlite.corrupt").read_text() == "an earlier casualty"
    assert len(cache) == 0
    cache.put_many({"k": ["t"]})
    assert cache.get_many(["k"], 1) == {"k": ["t"]}


def test_size_bound_evicts_the_oldest(tmp_path, monkeypatch):
    cache = ThoughtCache(tmp_path / "t.sqlite", max_entries=5)
    for i in range(8):
        cache.put_many({f"k{i}": [f"t{i}"]})
    assert len(cache) == 5
    assert set(cache.get_many([f"k{i}" for i in range(8)])) == {f"k{i}" for i in range(3, 8)}
    monkeypatch.setenv("O1_RETRIEVER_CACHE_MAX_ENTRIES", "2")
    assert ThoughtCache(tmp_path / "t.sqlite").max_entries == 2
    monkeypatch.setenv("O1_RETRIEVER_CACHE_MAX_ENTRIES", "lots")
    with pytest.raises(ValueError, match="O1_RETRIEVER_CACHE_MAX_ENTRIES"):
        ThoughtCache(tmp_path / "t.sqlite")


def test_cache_info_and_clear_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    assert cli(["cache", "info"]) == 0
    assert "no thought cache" in capsys.readouterr().out
    ThoughtCache(tmp_path / "thoughts.sqlite").put_many({"a": ["x"], "b": ["y"]})
    assert cli(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "entries      2" in out and str(tmp_path / "thoughts.sqlite") in out
    assert cli(["cache", "clear"]) == 0
    assert "removed 2" in capsys.readouterr().out
    assert len(ThoughtCache(tmp_path / "thoughts.sqlite")) == 0
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    assert cli(["cache", "clear", "--path", str(other)]) == 2
    assert "not a SQLite database" in capsys.readouterr().err and other.read_text() == "keep me"


def test_cache_cli_sets_a_damaged_default_file_aside_and_clear_removes_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    default = tmp_path / "thoughts.sqlite"
    default.write_bytes(b"\0" * 4096)  # a header wiped by a crash: the package's own file, not something else
    assert cli(["cache", "info"]) == 0  # was: refused, with a hint about a --path nobody passed
    captured = capsys.readouterr()
    assert "--path" not in captured.err and "entries      0" in captured.out
    assert "set aside    1 damaged file(s)" in captured.out
    ThoughtCache(default).put_many({"a": ["x"]})
    assert cli(["cache", "clear"]) == 0
    assert "removed 1 cached thought set(s)" in capsys.readouterr().out
    assert not list(tmp_path.glob("thoughts.sqlite.corrupt*")) and default.exists()


def test_cache_cli_on_an_empty_file_and_a_locked_cache(tmp_path, capsys):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert cli(["cache", "info", "--path", str(empty)]) == 0  # was: wrote a schema into it
    assert "no thought cache" in capsys.readouterr().out and empty.stat().st_size == 0
    path = tmp_path / "t.sqlite"
    ThoughtCache(path).put_many({"a": ["x"]})
    holder = sqlite3.connect(path, isolation_level=None)  # another writer holds the lock (a connection of its own)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert cli(["cache", "clear", "--path", str(path)]) == 2  # was: a sqlite3.OperationalError traceback
        assert "is locked by another process" in capsys.readouterr().err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(ThoughtCache(path)) == 1
    assert cli(["cache", "clear", "--path", str(tmp_path)]) == 2
    assert "(here: `--path` names another file)" in capsys.readouterr().err
