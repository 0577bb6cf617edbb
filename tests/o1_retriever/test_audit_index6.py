"""Audit of `O1Index` as a demanding Chroma user meets it: two processes writing the same ids at once on a real Chroma
server (`chroma run`), the incomplete mark of a run on another host, plain Chroma opening an O1 collection with
another model's function, and a writer killed (SIGKILL) mid-write."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import chromadb
import pytest

from o1_retriever.index import O1Index
from tests.fixtures import REPO, chroma_server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with chroma_server(tmp_path_factory.mktemp("chroma")) as address:
        yield address


# A writer in a process of its own: its embedding waits (after saying so in a file) until the test lets it go on.
HELD_WRITER = """
import sys, time
from pathlib import Path
from o1_retriever import O1Embedder
from o1_retriever.index import O1Index
model, host, port, collection, entered, go, method = sys.argv[1:8]
embedder = O1Embedder.from_pretrained(model, device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=8)

class Held:
    def __getattr__(self, name):
        return getattr(embedder, name)

    def encode_documents(self, texts, **kwargs):
        Path(entered).touch()
        while not Path(go).exists():
            time.sleep(0.05)
        return embedder.encode_documents(texts, **kwargs)

index = O1Index(embedder, host=host, port=int(port), collection=collection)
index.embedder = Held()
getattr(index, method)(["d"], ["the written text"], metadatas=[{"a": 1}])
"""


def _start_held_writer(tmp_path, tiny_o1_dir, served, collection, method) -> tuple[subprocess.Popen, Path, Path]:
    entered, go = tmp_path / "entered", tmp_path / "go"
    child = subprocess.Popen([sys.executable, "-c", HELD_WRITER, str(tiny_o1_dir), served["host"], str(served["port"]),
                              collection, str(entered), str(go), method], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not entered.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the writer did not start embedding: {child.communicate()[0][-2000:]}")
        time.sleep(0.05)
    return child, entered, go


@pytest.mark.parametrize("method", ["add", "add_resumable"])
def test_two_processes_writing_one_id_end_with_one_whole_write(served, tiny_embedder, tiny_o1_dir, tmp_path, method):
    """A writer read the record's keys before embedding and wrote after: a key another process wrote meanwhile was
    not removed, so the record ended as a mix of both writes ({'a': 1, 'b': 2}). The last write now wins whole."""
    collection = f"race-{method.replace('_', '-')}"
    index = O1Index(tiny_embedder, client=chromadb.HttpClient(**served), collection=collection)
    index.add(["d"], ["the first text"], metadatas=[{"x": 0}])
    child, _, go = _start_held_writer(tmp_path, tiny_o1_dir, served, collection, method)
    try:
        index.add(["d"], ["another process's text"], metadatas=[{"b": 2}])  # while the child embeds
        assert index.collection.get(ids=["d"])["metadatas"] == [{"b": 2}]
    finally:
        go.touch()
        output = child.communicate(timeout=120)[0]
    assert child.returncode == 0, output[-2000:]
    got = index.collection.get(ids=["d"], include=["documents", "metadatas"])
    assert got["documents"] == ["the written text"] and got["metadatas"] == [{"a": 1}]
