"""Audit of `O1Index` as a demanding Chroma user meets it: two processes writing the same ids at once on a real Chroma
server (`chroma run`), the incomplete mark of a run on another host, plain Chroma opening an O1 collection with
another model's function, and a writer killed (SIGKILL) mid-write."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import warnings
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


def _start_held_writer(tmp_path, tiny_o1_dir, served, collection, method,
                       host: str | None = None) -> tuple[subprocess.Popen, Path, Path]:
    """The held writer in a child process; with `host`, in a UTS namespace of its own whose hostname is `host` (its
    pid stays visible here, as a process of another machine's may happen to be)."""
    entered, go = tmp_path / "entered", tmp_path / "go"
    command = [sys.executable, "-c", HELD_WRITER, str(tiny_o1_dir), served["host"], str(served["port"]),
               collection, str(entered), str(go), method]
    if host is not None:
        if not shutil.which("unshare") or subprocess.run(["unshare", "-Uru", "true"]).returncode:
            pytest.skip("no unprivileged `unshare -Uru` here to give a process another hostname")
        command = ["unshare", "-Uru", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *command]
    child = subprocess.Popen(command, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_file(child, entered, "the writer did not start embedding")
    return child, entered, go


def _wait_for_file(child: subprocess.Popen, path: Path, what: str) -> None:
    """Wait until `child` creates `path`; one that exits first, or takes over 120 s, fails the test (killed first:
    its output is read only once it has ended)."""
    deadline = time.monotonic() + 120
    while not path.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"{what}: {child.communicate()[0][-2000:]}")
        time.sleep(0.05)


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


def _run_keys(index) -> list[str]:
    return [key for key in index._stored_metadata() if key.startswith("o1:run:")]


def test_a_run_finishing_here_keeps_the_mark_of_a_run_writing_from_another_host(served, tiny_embedder, tiny_o1_dir,
                                                                                 tmp_path):
    """A finishing run checked the pid of another host's run on this host (or cleared it): the collection read
    complete while that run still wrote. Its mark is now kept, with a warning naming the host, until it finishes."""
    index = O1Index(tiny_embedder, client=chromadb.HttpClient(**served), collection="other-host")
    child, _, go = _start_held_writer(tmp_path, tiny_o1_dir, served, "other-host", "add_resumable", host="far-away")
    try:
        assert index.incomplete and len(_run_keys(index)) == 1
        with pytest.warns(UserWarning, match=r"another host \(host 'far-away' pid \d+"):
            assert index.add_resumable(["e"], ["written here"]) == (1, 0)
        assert index.incomplete  # the other host's run still writes
        with pytest.warns(UserWarning, match="'far-away'.*clear_incomplete"):
            index.search("anything", top_k=1, k=0)
    finally:
        go.touch()
        output = child.communicate(timeout=120)[0]
    assert child.returncode == 0, output[-2000:]
    assert not index.incomplete and _run_keys(index) == []


def test_the_mark_of_a_killed_run_of_another_host_stays_until_cleared(served, tiny_embedder, tiny_o1_dir, tmp_path):
    """A run of another host killed mid-write (SIGKILL): this host cannot tell it is gone, so the mark stays through a
    run here; `clear_incomplete()` removes it, and the documents stored stay."""
    index = O1Index(tiny_embedder, client=chromadb.HttpClient(**served), collection="killed-far")
    child, _, _ = _start_held_writer(tmp_path, tiny_o1_dir, served, "killed-far", "add_resumable", host="far-away")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    with pytest.warns(UserWarning, match="far-away"):
        index.add_resumable(["e"], ["written here"])
    assert index.incomplete
    index.clear_incomplete()
    assert not index.incomplete and _run_keys(index) == [] and len(index) == 1


def test_a_dead_run_of_another_host_whose_mark_went_stale_is_cleared_by_a_run_here(served, tiny_embedder, tiny_o1_dir,
                                                                                     tmp_path, monkeypatch):
    """A container gets a new hostname on every start: a run killed in one is never re-run on its host, and its mark
    kept every later run here warning, for good. A mark not stamped for STALE_AFTER seconds is now a dead run's."""
    from o1_retriever import index_marks
    index = O1Index(tiny_embedder, client=chromadb.HttpClient(**served), collection="stale-far")
    child, _, _ = _start_held_writer(tmp_path, tiny_o1_dir, served, "stale-far", "add_resumable", host="far-away")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    monkeypatch.setattr(index_marks, "STALE_AFTER", 1.0)  # the default, 30 minutes, is the same rule on a longer clock
    time.sleep(1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "stays marked incomplete" warning
        index.add_resumable(["e"], ["written here"])
    assert not index.incomplete and _run_keys(index) == []


@pytest.mark.parametrize("make_client", ["persistent", "served"])
def test_plain_chroma_refuses_another_models_function_passed_to_get_collection(tiny_embedder, tiny_lm_dir, tmp_path,
                                                                               served, make_client):
    """Chroma compares a passed function with the collection's by name() alone: `get_collection(name,
    embedding_function=<another model's O1 function>)` searched and wrote with the wrong model. The function now
    refuses on its first embedding for that collection, naming both models; nothing is written."""
    from o1_retriever import O1Embedder
    from o1_retriever.chroma import O1EmbeddingFunction
    client = chromadb.PersistentClient(str(tmp_path / "db")) if make_client == "persistent" \
        else chromadb.HttpClient(**served)
    index = O1Index(tiny_embedder, client=client, collection="plain")
    index.add(["a", "b"], ["the river and the ocean", "music of the city"])
    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    collection = client.get_collection("plain", embedding_function=O1EmbeddingFunction(other, num_thoughts=0))
    both = rf"collection 'plain' .*built with model {tiny_embedder.name!r}.*this embedder is {other.name!r}"
    with pytest.raises(ValueError, match=both):
        collection.query(query_texts=["ocean"], n_results=1)
    with pytest.raises(ValueError, match=both):
        collection.add(ids=["c"], documents=["written with the wrong model"])
    assert collection.count() == 2
    # the right model's function, passed the same way, embeds as before
    right = client.get_collection("plain", embedding_function=O1EmbeddingFunction(tiny_embedder, num_thoughts=0))
    assert right.query(query_texts=["ocean"], n_results=1)["ids"] in ([["a"]], [["b"]])


def test_a_repeated_id_in_delete_is_deleted_once(tiny_embedder):
    """Chroma refused delete(['a', 'a']) with its DuplicateIDError; the id is now deleted once, as a set of ids."""
    index = O1Index(tiny_embedder)
    index.add(["a", "b"], ["the river and the ocean", "music of the city"])
    assert index.delete(["a", "a"]) == 1
    assert index.collection.get()["ids"] == ["b"]


@pytest.mark.slow
def test_add_resumable_takes_a_batch_larger_than_sqlite_reads_at_once(tiny_embedder, tmp_path):
    """A batch past SQLite's 32766 variables (batch_size=40000) failed on the read of its stored records with
    Chroma's 'too many SQL variables', before anything was written; the read now goes in parts."""
    import numpy as np
    from o1_retriever.chroma import O1EmbeddingFunction
    client = chromadb.PersistentClient(str(tmp_path / "db"))
    client.create_collection("big", embedding_function=O1EmbeddingFunction(tiny_embedder), configuration={
        "hnsw": {"space": "cosine", "ef_construction": 4, "max_neighbors": 2}})  # a cheap graph: the ids matter here
    index = O1Index(tiny_embedder, client=client, collection="big")
    count = 33_000
    ids, texts = [f"d{i}" for i in range(count)], [f"document {i}" for i in range(count)]
    vectors = np.random.default_rng(0).standard_normal((count, tiny_embedder.dim)).astype("float32")
    for start in range(0, count, 5000):  # stored already, as by an earlier run: this run embeds nothing
        index.collection.upsert(ids=ids[start:start + 5000], documents=texts[start:start + 5000],
                                embeddings=vectors[start:start + 5000])
    assert index.add_resumable(ids, texts, batch_size=40_000) == (0, count)
    assert len(index) == count and not index.incomplete


# add() in a process of its own, on a persistent Chroma: with `writes_before_kill` > 0, after that many batches are
# written it says so in a file and waits to be killed (the test sends SIGKILL).
KILLED_ADD = """
import sys, time
from pathlib import Path
from o1_retriever import O1Embedder
from o1_retriever.index import O1Index
model, db, written, writes_before_kill, count, label = sys.argv[1:7]
embedder = O1Embedder.from_pretrained(model, device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=8)
index = O1Index(embedder, path=db, collection="docs")
collection, writes = index.collection, []

class Killable:
    def __getattr__(self, name):
        return getattr(collection, name)

    def upsert(self, **kwargs):
        collection.upsert(**kwargs)
        writes.append(len(kwargs["ids"]))
        if len(writes) == int(writes_before_kill):
            Path(written).touch()
            time.sleep(600)

index.collection = Killable()
n = int(count)
index.add([f"d{i}" for i in range(n)], [f"{label} text {i}" for i in range(n)],
          metadatas=[{"run": label, **({"old": i} if label == "old" else {})} for i in range(n)], batch_size=4)
"""


def _add_in_a_child(tiny_o1_dir, db, written, writes_before_kill, count, label) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", KILLED_ADD, str(tiny_o1_dir), str(db), str(written),
                             str(writes_before_kill), str(count), label],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_an_add_killed_mid_write_leaves_whole_records_and_a_rerun_completes(tiny_embedder, tiny_o1_dir, tmp_path):
    """SIGKILL of a real process between two of add()'s batch writes: no rollback can run, so the batches written
    stay (add's docstring says so), each record whole (its text, metadata and vector from one write); the database
    opens, searches, and a re-run of the add completes it. (This process opens the database only after the writers
    ended: a local Chroma keeps its vectors in memory per process, see O1Index.)"""
    db, written, count = tmp_path / "db", tmp_path / "written", 12
    first = _add_in_a_child(tiny_o1_dir, db, written, 0, count, "old")
    assert first.wait(timeout=120) == 0, first.communicate()[0][-2000:]
    child = _add_in_a_child(tiny_o1_dir, db, written, 2, count, "new")
    _wait_for_file(child, written, "the add did not write")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)

    reopened = O1Index(tiny_embedder, path=db, collection="docs")
    got = reopened.collection.get(include=["documents", "metadatas", "embeddings"])
    assert len(got["ids"]) == count
    for i, text, metadata, vector in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
        n = int(i[1:])
        assert (text, metadata) in [(f"old text {n}", {"run": "old", "old": n}), (f"new text {n}", {"run": "new"})]
        assert abs(tiny_embedder.encode_documents([text])[0] - vector).max() < 1e-4  # the vector of that text
    assert sum(t.startswith("new") for t in got["documents"]) == 8  # the two batches written before the kill
    assert len(reopened.search("new text", top_k=count, k=0)) == count
    reopened.add([f"d{i}" for i in range(count)], [f"new text {i}" for i in range(count)],
                 metadatas=[{"run": "new"} for _ in range(count)])
    assert reopened.collection.get(include=["metadatas"])["metadatas"] == [{"run": "new"}] * count


@pytest.mark.slow
def test_writes_and_deletes_past_chromas_max_batch_size(tiny_embedder, tmp_path):
    """One add() batch, one re-add replacing metadata, and one delete(where=...) each of more records than Chroma takes
    in one call (client.get_max_batch_size(), 5461 in chromadb 1.5): each goes in parts, and ends whole."""
    from o1_retriever.chroma import O1EmbeddingFunction
    client = chromadb.PersistentClient(str(tmp_path / "db"))
    client.create_collection("large", embedding_function=O1EmbeddingFunction(tiny_embedder), configuration={
        "hnsw": {"space": "cosine", "ef_construction": 4, "max_neighbors": 2}})  # a cheap graph: the counts matter
    index = O1Index(tiny_embedder, client=client, collection="large")
    count = client.get_max_batch_size() + 40
    ids, texts = [f"d{i}" for i in range(count)], [f"doc {i}" for i in range(count)]
    assert index.add(ids, texts, metadatas=[{"group": 1, "first": True}] * count, batch_size=count) == count
    assert index.add(ids, texts, metadatas=[{"group": 1}] * count, batch_size=count) == count
    assert len(index) == count
    assert index.collection.get(where={"first": True}, include=[])["ids"] == []  # the dropped key is gone from all
    index.add(["kept"], ["a document of another group"], metadatas=[{"group": 2}])
    assert index.delete(where={"group": 1}) == count
    assert index.collection.get()["ids"] == ["kept"]


# add() of two ids, one a batch, in a process of its own: after its first batch is written it says so in a file and
# waits for the test's go before the second.
HELD_BETWEEN_BATCHES = """
import sys, time
from pathlib import Path
from o1_retriever import O1Embedder
from o1_retriever.index import O1Index
model, host, port, written, go = sys.argv[1:6]
embedder = O1Embedder.from_pretrained(model, device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=8)
index = O1Index(embedder, host=host, port=int(port), collection="between")
collection = index.collection

class Held:
    def __getattr__(self, name):
        return getattr(collection, name)

    def upsert(self, **kwargs):
        collection.upsert(**kwargs)
        Path(written).touch()
        while not Path(go).exists():
            time.sleep(0.05)

index.collection = Held()
index.add(["d0", "d1"], ["first text", "second text"], metadatas=[{"a": 1}, {"a": 1}], batch_size=1)
"""


def test_a_write_between_two_batches_of_an_add_is_replaced_whole(served, tiny_embedder, tiny_o1_dir, tmp_path):
    """add() read every record's keys once, before its first batch: a key another process wrote to a later batch's
    record in between stayed ({'a': 1, 'b': 2}). Each later batch reads its records' keys again before it writes."""
    index = O1Index(tiny_embedder, client=chromadb.HttpClient(**served), collection="between")
    index.add(["d0", "d1"], ["old", "old"], metadatas=[{"x": 0}, {"x": 0}])
    written, go = tmp_path / "written", tmp_path / "go"
    child = subprocess.Popen([sys.executable, "-c", HELD_BETWEEN_BATCHES, str(tiny_o1_dir), served["host"],
                              str(served["port"]), str(written), str(go)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_file(child, written, "the add did not write")
        index.add(["d1"], ["another process's text"], metadatas=[{"b": 2}])
    finally:
        go.touch()
        output = child.communicate(timeout=120)[0]
    assert child.returncode == 0, output[-2000:]
    assert index.collection.get(ids=["d0", "d1"], include=["metadatas"])["metadatas"] == [{"a": 1}, {"a": 1}]


def test_metadata_from_numpy_and_enums_is_stored_as_plain_values_and_a_rerun_skips_it(tiny_embedder):
    """np.float64 (a DataFrame's number) and np.str_ passed the check but kept their type, so add_resumable compared
    (np.float64, 1.5) with the stored (float, 1.5) and embedded the document again on every re-run; np.int64,
    np.float32 and np.bool_ were refused. Each is now stored as the plain value, and a re-run skips it."""
    import enum

    import numpy as np

    class Colour(str, enum.Enum):
        RED = "red"

    index = O1Index(tiny_embedder)
    values = {"f64": np.float64(1.5), "f32": np.float32(0.5), "i64": np.int64(3), "flag": np.bool_(True),
              "s": np.str_("text"), "colour": Colour.RED}
    assert index.add_resumable(["a"], ["a document"], [values]) == (1, 0)
    assert index.add_resumable(["a"], ["a document"], [values]) == (0, 1)
    stored = index.collection.get(ids=["a"], include=["metadatas"])["metadatas"][0]
    assert stored == {"f64": 1.5, "f32": 0.5, "i64": 3, "flag": True, "s": "text", "colour": "red"}
    assert [type(stored[k]) for k in ("f64", "i64", "flag", "s")] == [float, int, bool, str]
    assert index.collection.get(where={"colour": "red"}, include=[])["ids"] == ["a"]


def test_a_collection_made_with_an_unloaded_function_still_embeds_with_its_model(tiny_o1_dir):
    """A collection created by plain Chroma with O1EmbeddingFunction(model=..., load=False) records no fingerprint:
    the check against another model's function must let its own function (and the same model's) embed."""
    from o1_retriever.chroma import O1EmbeddingFunction
    options = dict(device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=8, num_thoughts=0)
    client = chromadb.EphemeralClient()
    made = client.create_collection("unloaded-function",
                                    embedding_function=O1EmbeddingFunction(model=str(tiny_o1_dir), load=False, **options))
    made.add(ids=["a"], documents=["hello there"])
    again = client.get_collection("unloaded-function",
                                  embedding_function=O1EmbeddingFunction(model=str(tiny_o1_dir), **options))
    assert again.query(query_texts=["hello"], n_results=1)["ids"] == [["a"]]
