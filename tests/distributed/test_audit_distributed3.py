"""Audit of the Ray path as a demanding user meets it: bad values refused before any work, an address where nothing
listens refused at once, the Ray a call started shut down after it, `eval --ray` loading the model once per run (not
once per 64 documents), no temporary left beside the shards, and results equal to one process on uneven inputs.

The tests that need no Ray running come first; the module's Ray (the `ray_session` fixture) starts after them."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

from tests.distributed.corpora import embedded_text, make_documents, write_jsonl
from tests.fixtures import free_port

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture
def no_ray_running(tmp_path, monkeypatch):
    """For a test of what a call does when no Ray is running in this process: its actors' thought cache is temporary,
    and the test fails if it left Ray running."""
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process (run this test first or alone)")
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "o1_cache"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.parametrize("actors, error, message", [
    (0, ValueError, r"actors must be > 0, got 0"),
    (-2, ValueError, r"actors must be > 0, got -2"),
    ("2", TypeError, r"actors must be a positive int, got '2'"),
])
def test_bad_actors_are_refused_before_the_input_is_read_or_ray_starts(no_ray_running, tmp_path, actors, error,
                                                                       message):
    """actors=0 was refused only after the whole input was read, a local Ray started (seconds to minutes) and the
    output folder created; a finished folder took it without a word."""
    from o1_retriever.distributed import encode_corpus, encode_texts, ray_corpus_embeddings
    from o1_retriever.distributed.workers import ModelSpec
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, make_documents(5))
    started = time.monotonic()
    with pytest.raises(error, match=message):
        encode_corpus(corpus, tmp_path / "vectors", "unused-model", actors=actors)
    with pytest.raises(error, match=message):
        encode_texts(ModelSpec(), ["a text"], actors=actors)
    with pytest.raises(error, match=message):
        ray_corpus_embeddings(None, ["d1"], ["a text"], actors=actors)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "vectors").exists() and not ray.is_initialized()


def test_an_address_where_nothing_listens_fails_at_once_naming_it(tmp_path):
    """`--address host:port` where no Ray runs: Ray retried for minutes before a RuntimeError
    traceback; now one line at once naming the address, before the input is read. A malformed address says what
    an address looks like."""
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, make_documents(3))
    env = {**os.environ, "RAY_ADDRESS": ""}
    port = free_port()
    for address, message in [(f"127.0.0.1:{port}", f"no Ray cluster answers at address='127.0.0.1:{port}'"),
                             (f"ray://127.0.0.1:{port}", f"no Ray cluster answers at address='ray://127.0.0.1:{port}'"),
                             ("head-node", "address='head-node' is not a Ray address: pass 'auto', host:port")]:
        command = [sys.executable, "-m", "o1_retriever.distributed", "encode", str(corpus), "--vectors",
                   str(tmp_path / "vectors"), "--address", address]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=90, env=env)
        except subprocess.TimeoutExpired:
            pytest.fail(f"--address {address}: still waiting after 90 s")
        assert done.returncode == 2, done.stderr[-2000:]
        assert message in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "vectors").exists()


def test_the_python_api_shuts_down_the_ray_it_started(no_ray_running, tmp_path, tiny_o1_dir):
    """encode_corpus with no Ray running started a local Ray and left it running (its processes outliving the call,
    and a later ray.init(address=...) refused as a second init)."""
    from o1_retriever.distributed import encode_corpus
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, make_documents(4))
    result = encode_corpus(corpus, tmp_path / "vectors", str(tiny_o1_dir), actors=1, dtype="fp32",
                           thought_cache=False)
    assert (result.rows, result.written) == (4, 1)
    assert not ray.is_initialized()


@pytest.mark.slow  # a local Ray started and an actor loading the model: over 20 s
def test_eval_on_ray_loads_the_model_once_and_shuts_down_its_ray(no_ray_running, tmp_path, tiny_embedder,
                                                                 monkeypatch):
    """`eval --ray` embedded the corpus 64 documents at a time, each chunk a new pool of actors loading the model
    (300 documents: 5 pools), and left its Ray running."""
    from o1_retriever.distributed import evaluation, ray_corpus_embeddings
    calls = []

    def counted(spec, texts, **options):
        calls.append(len(texts))
        return encode_texts(spec, texts, **options)

    encode_texts = evaluation.encode_texts
    monkeypatch.setattr(evaluation, "encode_texts", counted)
    documents = make_documents(300, seed=2)
    ids, texts = [d["_id"] for d in documents], [embedded_text(d) for d in documents]
    vectors, cached = ray_corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path, actors=1)
    assert not cached and calls == [300]
    np.testing.assert_allclose(vectors, tiny_embedder.encode_documents(texts), rtol=0, atol=1e-5)
    assert not ray.is_initialized()
    again, cached = ray_corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path, actors=1)
    assert cached and np.array_equal(again, vectors) and calls == [300]  # a cache hit starts no Ray
    assert not ray.is_initialized()


# ---- with the module's Ray ----------------------------------------------------------------------------------------
def test_uneven_files_and_more_actors_than_shards_equal_one_process(ray_session, tmp_path, tiny_o1_dir,
                                                                    tiny_embedder):
    """Two files of 7 and 3 rows in shards of 4 (4+3, 3), two actors: every row once, in file order, with the
    one-process vector; the Ray the caller started stays up."""
    from o1_retriever.distributed import encode_corpus, read_vectors
    documents = make_documents(10, seed=4)
    (tmp_path / "corpus").mkdir()
    write_jsonl(tmp_path / "corpus" / "a.jsonl", documents[:7])
    write_jsonl(tmp_path / "corpus" / "b.jsonl", documents[7:])
    result = encode_corpus(tmp_path / "corpus", tmp_path / "vectors", str(tiny_o1_dir), actors=2, shard_size=4,
                           dtype="fp32", thought_cache=False)
    assert (result.shards, result.rows, result.actors) == (3, 10, 2)
    got = read_vectors(tmp_path / "vectors")
    assert got["ids"] == [d["_id"] for d in documents]
    want = tiny_embedder.encode_documents([embedded_text(d) for d in documents])
    np.testing.assert_allclose(got["vectors"], want, rtol=0, atol=1e-5)
    assert ray.is_initialized()


def test_no_temporary_is_left_beside_the_shards_after_a_run(ray_session, tmp_path, tiny_o1_dir):
    """An actor killed while writing a shard leaves its temporary (`.part-....tmp`, as large as a shard); Ray's retry
    writes the shard whole, but the temporary stayed in the finished folder until some later run. Here one is put
    there as such a writer leaves it, once the run has begun writing."""
    from o1_retriever.distributed import encode_corpus
    corpus, out = tmp_path / "corpus.jsonl", tmp_path / "vectors"
    write_jsonl(corpus, make_documents(40, seed=6))
    leftover = out / f".part-00000-000003.parquet.{uuid.uuid4().hex}.tmp"
    outcome = {}

    def run():
        outcome["result"] = encode_corpus(corpus, out, str(tiny_o1_dir), actors=1, shard_size=4, dtype="fp32",
                                          thought_cache=False)

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 120
    while not list(out.glob("part-*.parquet")) and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.is_alive(), "the run ended before it could be interrupted"
    leftover.write_bytes(b"PAR1 half a shard")
    runner.join(timeout=300)
    assert outcome["result"].written == 10
    assert not list(out.glob(".*.tmp"))
