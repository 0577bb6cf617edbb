"""Issue 27, finding 9: `o1-retriever index` killed with SIGKILL at any moment, then re-run, gives the corpus once.

A real child process runs the real CLI; the parent watches Chroma's own SQLite file (read-only) and kills the
child with SIGKILL while it is writing, twice, then re-runs the command to completion.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from o1_retriever.cli import main as cli
from o1_retriever.index import O1Index

N = 600
REPO = Path(__file__).resolve().parents[2]


def _stored(db) -> int:
    try:
        conn = sqlite3.connect(f"file:{db / 'chroma.sqlite3'}?mode=ro", uri=True, timeout=0.1)
        try:
            return conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or mid-write
        return 0


def _index_cmd(tiny_o1_dir, corpus, db):
    return [sys.executable, "-m", "o1_retriever.cli", "index", "--corpus", str(corpus), "--db", str(db),
            "--collection", "docs", "--batch-size", "4", "--model", str(tiny_o1_dir), "--device", "cpu",
            "--dtype", "fp32"]


def _kill_when(cmd, db, at_least: int, env) -> int:
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while _stored(db) < at_least and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert child.poll() is None, "the run finished before it could be killed: make the corpus larger"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return _stored(db)


def test_sigkill_mid_index_then_rerun_gives_the_corpus_once(tiny_o1_dir, tiny_embedder, tmp_path, capsys):
    corpus, db = tmp_path / "corpus.jsonl", tmp_path / "db"
    words = "protein cell gene river ocean solar energy music history city".split()
    rows = [{"_id": f"d{i}", "text": f"{words[i % 10]} {words[(i * 7) % 10]} passage {i}", "n": i} for i in range(N)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "O1_RETRIEVER_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    cmd = _index_cmd(tiny_o1_dir, corpus, db)

    first = _kill_when(cmd, db, 1, env)  # killed as soon as the first batch landed
    second = _kill_when(cmd, db, first + 40, env)  # the re-run went on from there, and is killed again
    assert 0 < first < second < N

    # A half-written collection says so when searched.
    partial = O1Index(tiny_embedder, path=db, collection="docs")
    assert partial.incomplete
    with pytest.warns(UserWarning, match="incomplete"):
        partial.search("protein", top_k=1, k=0)

    assert cli(cmd[3:]) == 0  # the same command, run to the end in this process
    out = capsys.readouterr().out
    assert "already stored, skipped" in out
    index = O1Index(tiny_embedder, path=db, collection="docs")
    assert not index.incomplete and len(index) == N
    got = index.collection.get(include=["documents", "metadatas", "embeddings"])
    by_id = {i: (d, m, v) for i, d, m, v in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])}
    assert sorted(by_id) == sorted(r["_id"] for r in rows)
    sample = rows[:: N // 20]
    want = tiny_embedder.encode_documents([r["text"] for r in sample])
    for r, vector in zip(sample, want):
        text, meta, stored = by_id[r["_id"]]
        assert text == r["text"] and meta == {"n": r["n"]}
        np.testing.assert_allclose(stored, vector, atol=1e-5)
    # the vector index agrees with the stored records: each sampled document finds itself first
    found = index.collection.query(query_embeddings=want.tolist(), n_results=1)
    assert [ids[0] for ids in found["ids"]] == [r["_id"] for r in sample]

    assert cli(cmd[3:]) == 0  # a third run has nothing left to do
    assert "indexed 0 passages" in capsys.readouterr().out


HELD_RUN = r"""
import sys, time
from o1_retriever import O1Embedder
from o1_retriever.index import O1Index
model, db = sys.argv[1:3]
embedder = O1Embedder.from_pretrained(model, device="cpu", dtype="fp32", thought_cache=False)
index = O1Index(embedder, path=db, collection="docs")
encode, calls = embedder.encode_documents, []
def held(texts, **kwargs):  # the second batch waits, half-way through the run's writes, for the parent's word
    calls.append(texts)
    if len(calls) == 2:
        print("writing", flush=True)
        if sys.stdin.readline() == "fail\n":
            raise RuntimeError("the run fails")
    return encode(texts, **kwargs)
embedder.encode_documents = held
try:
    index.add_resumable([f"c{i}" for i in range(6)], [f"child passage {i}" for i in range(6)], batch_size=2)
except RuntimeError:
    print("failed", flush=True)
    time.sleep(600)  # the process lives on, as a notebook would
"""


def test_a_finished_run_keeps_the_mark_of_a_live_run_and_clears_a_failed_ones(tiny_o1_dir, tiny_embedder, tmp_path):
    """Runs in two processes shared one flag: the first to finish marked the collection complete while the other
    was still writing. A finishing run now leaves the mark of a run writing in a live process, and clears the mark of
    one that failed, though its process lives on (a killed one's: the test above)."""
    from o1_retriever.index import INCOMPLETE_KEY
    db = tmp_path / "db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", HELD_RUN, str(tiny_o1_dir), str(db)], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if child.stdout.readline() != "writing\n":
            child.wait(timeout=60)
            raise AssertionError(child.stderr.read()[-2000:])
        index = O1Index(tiny_embedder, path=db, collection="docs")
        assert index.incomplete
        assert index.add_resumable(["p1", "p2"], ["a parent passage", "another one"]) == (2, 0)
        assert index.incomplete  # the child still writes
        child.stdin.write("fail\n")
        child.stdin.flush()
        assert child.stdout.readline() == "failed\n" and child.poll() is None
        assert index.incomplete  # a failed run leaves its mark
        assert index.add_resumable(["p1", "p2"], ["a parent passage", "another one"]) == (0, 2)
        assert not index.incomplete and index._stored_metadata() == {INCOMPLETE_KEY: False}
    finally:
        child.kill()
        child.wait()
