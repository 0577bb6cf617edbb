import multiprocessing as mp
import sqlite3

import pytest

from o1_retriever import O1Embedder
from o1_retriever.cache import ThoughtCache, cache_key


def test_hit_skips_generation(tiny_o1_dir, tmp_path):
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", vector_cache=False,
                                     thought_cache=tmp_path / "t.sqlite", max_new_tokens=6)
    calls = []
    real_generate = emb.thinker._generate
    emb.thinker._generate = lambda *a, **kw: calls.append(a[0]) or real_generate(*a, **kw)  # spy, real model
    first = emb.encode_queries(["protein cell", "river"], k=2, return_thoughts=True)
    assert len(calls) == 1
    assert emb.cached_fraction(["river", "protein cell", "the war", "mud"], k=2) == 0.5
    assert emb.cached_fraction(["river"], k=3) == 0.0 and emb.cached_fraction("river", k=0) == 0.0
    again = emb.encode_queries(["river", "protein cell", "the war"], k=2, return_thoughts=True)
    assert calls[1] == ["the war"]  # only the new query was thought about
    assert again.thoughts[0] == first.thoughts[1] and again.thoughts[1] == first.thoughts[0]
    emb.encode_queries(["river"], k=3)  # another k is another key
    assert len(calls) == 3


def test_key_depends_on_every_input():
    base = cache_key("fp", "tmpl", "q", 3, {"temperature": 0.1, "seed": 0})
    assert base != cache_key("fp2", "tmpl", "q", 3, {"temperature": 0.1, "seed": 0})
    assert base != cache_key("fp", "tmpl2", "q", 3, {"temperature": 0.1, "seed": 0})
    assert base != cache_key("fp", "tmpl", "q2", 3, {"temperature": 0.1, "seed": 0})
    assert base != cache_key("fp", "tmpl", "q", 2, {"temperature": 0.1, "seed": 0})
    assert base != cache_key("fp", "tmpl", "q", 3, {"temperature": 0.1, "seed": 1})


def _writer(path, worker, n):
    cache = ThoughtCache(path)
    for i in range(n):
        cache.put_many({f"{worker}-{i}": [f"thought {worker} {i}"]})


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "t.sqlite"
    ThoughtCache(path)
    procs = [mp.get_context("spawn").Process(target=_writer, args=(str(path), w, 150)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    cache = ThoughtCache(path)
    assert len(cache) == 300
    assert cache.get_many(["0-149", "1-0"]) == {"0-149": ["thought 0 149"], "1-0": ["thought 1 0"]}


def _corrupt(path):
    """Scribble over the pages after the header of a thought cache: SQLite then reports it malformed."""
    data = bytearray(path.read_bytes())
    data[100:] = b"\xa5" * (len(data) - 100)
    path.write_bytes(bytes(data))


def test_corrupt_cache_warns_and_is_rebuilt(tiny_o1_dir, tmp_path):
    path = tmp_path / "t.sqlite"
    cache = ThoughtCache(path)
    cache.put_many({f"k{i}": [f"thought {i}"] for i in range(200)})
    cache.close()
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # rows into the main file
    _corrupt(path)
    with pytest.warns(UserWarning, match="corrupt"):
        emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", vector_cache=False, thought_cache=path,
                                         max_new_tokens=4)
    r = emb.encode_queries(["protein"], k=1, return_thoughts=True)
    assert len(r.thoughts[0]) == 1 and len(emb.thought_cache) == 1
    assert (tmp_path / "t.sqlite.corrupt").exists()


def test_corruption_after_open_never_fails_a_query(tiny_o1_dir, tmp_path):
    path = tmp_path / "t.sqlite"
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", vector_cache=False, thought_cache=path,
                                     max_new_tokens=4)
    emb.encode_queries(["protein"], k=1)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE thoughts")
    conn.commit()
    conn.close()
    with pytest.warns(UserWarning):
        vec = emb.encode_queries(["protein"], k=1)
    assert vec.shape == (1, emb.dim)


def test_thoughts_are_kept_batch_by_batch_so_a_failed_run_resumes(tiny_o1_dir, tmp_path):
    path = tmp_path / "t.sqlite"
    queries = ["protein cell", "river", "the war", "mud and rain"]

    def load():
        return O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", vector_cache=False,
                                          thought_cache=path, max_new_tokens=6)

    emb = load()
    calls, real_generate = [], emb.thinker._generate

    def second_batch_fails(*a, **kw):
        calls.append(a[0])
        if len(calls) == 2:
            raise RuntimeError("killed in the second batch")
        return real_generate(*a, **kw)

    emb.thinker._generate = second_batch_fails
    with pytest.raises(RuntimeError, match="second batch"):
        emb.encode_queries(queries, k=2, batch_size=2)
    again = load()  # another run over the same cache file
    assert again.cached_fraction(queries, k=2) == 0.5  # the first batch's thoughts survived the failure
    calls2, real2 = [], again.thinker._generate
    again.thinker._generate = lambda *a, **kw: calls2.append(a[0]) or real2(*a, **kw)
    resumed = again.encode_queries(queries, k=2, batch_size=2, return_thoughts=True)
    assert len(calls2) == 1 and len(calls2[0]) == 2  # only the batch that failed is thought about again
    fresh = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", vector_cache=False,
                                       thought_cache=False, max_new_tokens=6)
    assert resumed.thoughts == fresh.encode_queries(queries, k=2, batch_size=2, return_thoughts=True).thoughts
