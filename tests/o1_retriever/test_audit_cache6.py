"""Audit of the thought cache as a user running several processes on one cache directory: a damaged file at the
default location, a database cut short, and (real processes) a writer SIGKILLed mid-transaction beside live writers."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import warnings

import pytest

from o1_retriever import O1Embedder
from o1_retriever.cache import ThoughtCache


def _load(model_dir, cache):
    return O1Embedder.from_pretrained(str(model_dir), device="cpu", dtype="fp32", thought_cache=cache,
                                      max_new_tokens=4, vector_cache=False)


def test_a_default_cache_file_with_a_wiped_header_costs_neither_the_model_nor_the_cache(tiny_o1_dir, tmp_path,
                                                                                          monkeypatch):
    """thoughts.sqlite in the cache directory with its first page wiped (a crash, a bad disk) made every
    from_pretrained(thought_cache=True) raise 'not a SQLite database ... refusing to touch it': a file the package
    itself named cost the user the model. It is now moved aside, once, and a new cache starts."""
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    damaged = b"\0" * 4096 + b"rest of a cache"
    (tmp_path / "thoughts.sqlite").write_bytes(damaged)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = _load(tiny_o1_dir, True)
        emb.encode_queries(["protein cell"], k=1)
    messages = [str(w.message) for w in caught if "thought cache" in str(w.message)]
    assert len(messages) == 1 and "moved to" in messages[0], messages
    assert (tmp_path / "thoughts.sqlite.corrupt").read_bytes() == damaged  # kept, as it was
    assert emb.cached_fraction(["protein cell"], k=1) == 1.0  # the new cache works


def test_a_user_file_that_is_not_a_cache_is_still_refused(tiny_o1_dir, tmp_path):
    notes = tmp_path / "notes.sqlite"
    notes.write_bytes(b"\0" * 4096)
    with pytest.raises(ValueError, match="not a SQLite database"):
        _load(tiny_o1_dir, notes)
    assert notes.read_bytes() == b"\0" * 4096 and sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]


def test_a_cache_cut_inside_its_header_is_mended_not_refused(tmp_path):
    """A cache cut to its first bytes ('SQLite for', a prefix of SQLite's own header) was called 'not a SQLite
    database' and refused at every start; it is a database cut short, moved aside like any corrupt cache."""
    path = tmp_path / "t.sqlite"
    cache = ThoughtCache(path)
    cache.put_many({"a": ["x"]})
    cache.close()
    path.write_bytes(path.read_bytes()[:10])
    with pytest.warns(UserWarning, match=r"moved to .*t\.sqlite\.corrupt"):
        cache = ThoughtCache(path)
    cache.put_many({"b": ["y"]})
    assert cache.get_many(["a", "b"], 1) == {"b": ["y"]}
    assert (tmp_path / "t.sqlite.corrupt").read_bytes() == b"SQLite for"


KILLED_WRITER = """
import sys
from o1_retriever.cache import ThoughtCache
cache = ThoughtCache(sys.argv[1])
batch = 0
while True:
    cache.put_many({f"big-{batch}-{i}": ["x" * 2000] * 3 for i in range(400)})
    batch += 1
    if batch == 2:
        print("writing", flush=True)
"""

LIVE_WRITER = """
import sys, threading, warnings
from o1_retriever.cache import ThoughtCache
warnings.simplefilter("error")  # a warning (busy, corrupt) fails this writer
cache = ThoughtCache(sys.argv[1])
def write(thread):
    for batch in range(30):
        cache.put_many({f"{sys.argv[2]}-{thread}-{batch}-{i}": [f"t{i}"] * 3 for i in range(10)})
threads = [threading.Thread(target=write, args=(t,)) for t in range(2)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_a_writer_killed_mid_transaction_beside_live_writers_loses_only_its_open_batch(tmp_path):
    path = tmp_path / "t.sqlite"
    ThoughtCache(path).close()
    victim = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert victim.stdout.readline().strip() == "writing"
    live = [subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(path), f"p{n}"]) for n in range(2)]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert [p.wait(timeout=120) for p in live] == [0, 0]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    big = conn.execute("SELECT count(*) FROM thoughts WHERE key LIKE 'big-%'").fetchone()[0]
    conn.close()
    assert big >= 800 and big % 400 == 0  # whole batches only
    cache = ThoughtCache(path)
    assert len(cache) - big == 2 * 2 * 30 * 10  # every live write landed


MENDING_PROCESS = """
import sys
from o1_retriever.cache import ThoughtCache
ThoughtCache(sys.argv[1]).put_many({"c": ["from the other process"]})
"""


def test_a_file_another_process_set_aside_and_replaced_is_followed_not_moved_again(tmp_path):
    """Two processes on one cache that turns corrupt: the other process moved it aside and started a new one, then
    this one (its connection still on the old file) moved the new, healthy cache aside too, losing the other's rows,
    and its own writes went where no one reads. It now follows the path to the new file."""
    path = tmp_path / "t.sqlite"
    ours = ThoughtCache(path)
    ours.put_many({f"k{i}": ["t"] for i in range(300)})
    assert len(ours.get_many(["k1"], 1)) == 1  # this process holds a connection
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    data = bytearray(path.read_bytes())
    data[100:] = b"\x00\xff" * ((len(data) - 100) // 2)
    path.write_bytes(bytes(data))
    other = subprocess.run([sys.executable, "-c", MENDING_PROCESS, str(path)], capture_output=True, text=True)
    assert other.returncode == 0 and "moved to" in other.stderr, other.stderr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours.put_many({"a": ["from this process"]})
        assert ours.get_many(["a", "c"], 1) == {"a": ["from this process"], "c": ["from the other process"]}
    assert [str(w.message) for w in caught] == []
    assert sorted(p.name for p in tmp_path.glob("t.sqlite.corrupt*")) == ["t.sqlite.corrupt"]
    assert ThoughtCache(path).get_many(["a", "c"], 1) == {"a": ["from this process"], "c": ["from the other process"]}


def test_a_cache_deleted_under_a_running_process_is_written_anew(tmp_path):
    """`rm thoughts.sqlite*` while a server ran: the server kept writing into the deleted file, so nothing it
    thought after was cached for anyone (itself after a restart included)."""
    path = tmp_path / "t.sqlite"
    ours = ThoughtCache(path)
    ours.put_many({"old": ["x"]})
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    ours.put_many({"new": ["y"]})
    assert ThoughtCache(path).get_many(["old", "new"], 1) == {"new": ["y"]}


def test_a_corrupt_cache_that_cannot_be_moved_aside_costs_the_cache_not_the_query(tiny_o1_dir, tmp_path):
    """A cache found corrupt in a directory where it cannot be renamed (immutable here; a folder of another user, a
    file system gone read-only after an error) raised PermissionError out of encode_queries."""
    folder = tmp_path / "cache"
    folder.mkdir()
    path = folder / "t.sqlite"
    emb = _load(tiny_o1_dir, path)
    emb.encode_queries([f"query {i}" for i in range(40)], k=1)
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    with open(path, "r+b") as f:  # in place: the -wal and -shm files stay, as under a running process
        f.seek(100)
        f.write(b"\x00\xff" * ((path.stat().st_size - 100) // 2))
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs root on a file system that supports it")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = emb.encode_queries(["query 1", "a new query"], k=1)
            emb.encode_queries(["another"], k=1)
        messages = [str(w.message) for w in caught if "thought cache" in str(w.message)]
        assert len(messages) == 1 and "cannot be moved aside" in messages[0], messages
        assert got.shape == (2, emb.dim)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_cache_location_given_with_a_tilde_is_under_home(tmp_path, monkeypatch):
    from o1_retriever.default_model import cache_dir
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("O1_RETRIEVER_CACHE", "~/o1cache")  # as a quoted shell value or a .env file leaves it
    assert cache_dir() == tmp_path / "home" / "o1cache" and not (tmp_path / "~").exists()
