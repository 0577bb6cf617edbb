"""The incomplete mark with several writers: two `add_resumable` runs at once on one collection (threads, a real
persistent Chroma), a run that fails after another finished, a write by another process that drops a run's mark, and
collections written by the version that kept one shared flag."""
from __future__ import annotations

import queue
import threading

import chromadb
import pytest

from o1_retriever.index import INCOMPLETE_KEY, O1Index

A_IDS = [f"a{i}" for i in range(4)]
A_TEXTS = ["protein cell gene expression", "the river and the ocean water", "music history of the city",
           "solar energy plant and climate"]
B_IDS, B_TEXTS = ["b1", "b2"], ["a quiet mountain village", "the train leaves at noon"]


class Stepped:
    """The real embedder, with each `encode_documents` call waiting for the test's go (or an error to raise), so a
    run can be held mid-write."""

    def __init__(self, embedder):
        self._embedder, self.entered, self.steps = embedder, queue.Queue(), queue.Queue()

    def __getattr__(self, name):
        return getattr(self._embedder, name)

    def encode_documents(self, texts, **kwargs):
        self.entered.put(len(texts))
        step = self.steps.get(timeout=60)
        if isinstance(step, BaseException):
            raise step
        return self._embedder.encode_documents(texts, **kwargs)


class HeldRun:
    """`add_resumable` of A_IDS, one document a batch, in a thread, held inside its first batch's embedding."""

    def __init__(self, embedder, path):
        self.index = O1Index(embedder, path=path, collection="docs")
        self.stepped = self.index.embedder = Stepped(embedder)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.stepped.entered.get(timeout=60)

    def _run(self):
        try:
            self.result = self.index.add_resumable(A_IDS, A_TEXTS, batch_size=1)
        except BaseException as e:  # noqa: BLE001 - the test reads it
            self.error = e

    def step(self, then=None):
        """Let the held batch go on, and wait until the run is held in the next one (or ended)."""
        self.steps().put(then or "go")
        if self.thread.is_alive():
            try:
                self.stepped.entered.get(timeout=60)
            except queue.Empty:
                pass

    def steps(self):
        return self.stepped.steps

    def finish(self, error: BaseException | None = None):
        for _ in A_IDS:
            self.steps().put(error or "go")
        self.thread.join(60)
        assert not self.thread.is_alive()


def _metadata(path) -> dict:
    return dict(chromadb.PersistentClient(str(path)).get_collection("docs").metadata or {})


def test_a_run_that_finishes_leaves_the_mark_of_one_still_writing(tiny_embedder, tmp_path):
    """Both runs shared one flag: the first to finish cleared it while the other was still writing, so a reader saw
    a complete index that was not."""
    watcher = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    held = HeldRun(tiny_embedder, tmp_path)
    try:
        assert watcher.incomplete
        other = O1Index(tiny_embedder, path=tmp_path, collection="docs")
        assert other.add_resumable(B_IDS, B_TEXTS) == (2, 0)
        assert watcher.incomplete  # the held run still writes
        with pytest.warns(UserWarning, match="incomplete"):
            watcher.search("river", top_k=1, k=0)
    finally:
        held.finish()
    assert held.error is None and held.result == (4, 0)
    assert not watcher.incomplete and len(watcher) == 6
    assert _metadata(tmp_path) == {INCOMPLETE_KEY: False}  # no run's key left behind


def test_a_run_that_fails_after_another_finished_leaves_the_collection_marked(tiny_embedder, tmp_path):
    """The second run to end, failing, left the collection unmarked: the first had cleared the one flag."""
    watcher = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    held = HeldRun(tiny_embedder, tmp_path)
    try:
        held.step()  # one document written
        assert O1Index(tiny_embedder, path=tmp_path, collection="docs").add_resumable(B_IDS, B_TEXTS) == (2, 0)
    finally:
        held.finish(RuntimeError("the run dies"))
    assert isinstance(held.error, RuntimeError) and len(watcher) == 3
    assert watcher.incomplete
    assert _metadata(tmp_path)[INCOMPLETE_KEY]  # what older versions and `index`'s skip check read
    # a re-run in this process finishes the job and clears the failed run's mark
    assert watcher.add_resumable(A_IDS, A_TEXTS) == (3, 1)
    assert not watcher.incomplete and _metadata(tmp_path) == {INCOMPLETE_KEY: False}


def test_a_run_sets_its_mark_again_when_another_process_wrote_over_it(tiny_embedder, tmp_path):
    """modify() stores the whole metadata: another process that read it before a run marked it (or a version that
    knew one flag, finishing) writes it back without the mark, and the run went on unmarked to its end."""
    watcher = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    held = HeldRun(tiny_embedder, tmp_path)
    try:
        chromadb.PersistentClient(str(tmp_path)).get_collection("docs").modify(metadata={INCOMPLETE_KEY: False})
        assert not watcher.incomplete
        held.step()  # the next batch starts by setting the mark again
        assert watcher.incomplete
    finally:
        held.finish()
    assert held.error is None and not watcher.incomplete


@pytest.mark.parametrize("old_flag, incomplete", [("an `index` run has not finished; re-run it", True), (False, False)])
def test_a_collection_marked_by_the_previous_version_reads_and_clears_as_before(tiny_embedder, tmp_path, old_flag,
                                                                               incomplete):
    index = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    index.add(B_IDS, B_TEXTS)
    index.collection.modify(metadata={"owner": "team-a", INCOMPLETE_KEY: old_flag})
    assert index.incomplete is incomplete
    assert index.add_resumable(B_IDS + A_IDS[:1], B_TEXTS + A_TEXTS[:1]) == (1, 2)
    assert not index.incomplete and _metadata(tmp_path) == {"owner": "team-a", INCOMPLETE_KEY: False}


def test_an_in_memory_index_opens_after_a_chroma_setting_changed_in_the_environment(tiny_o1_dir):
    """AdminClient's default settings are read when chromadb is imported, EphemeralClient's when it is called: a
    process that set a Chroma setting in its environment after importing chromadb (a .env loaded late) got 'An
    instance of Chroma already exists for ephemeral with different settings' from an in-memory O1Index."""
    import os
    import subprocess
    import sys
    script = f"""
import os, chromadb
os.environ["ALLOW_RESET"] = "TRUE"
from o1_retriever import O1Embedder
from o1_retriever.index import O1Index
embedder = O1Embedder.from_pretrained({str(tiny_o1_dir)!r}, device="cpu", dtype="fp32", thought_cache=False)
index = O1Index(embedder)
index.add(["a"], ["some text"])
assert len(index) == 1 and chromadb.EphemeralClient().get_settings().allow_reset
"""
    env = {k: v for k, v in os.environ.items() if k != "ALLOW_RESET"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("path, error, message", [("", ValueError, r"path='' is empty"),
                                                  (123, TypeError, r"path=123 \(int\) is not a path")])
def test_a_database_path_that_is_empty_or_not_a_path_is_refused_naming_it(tiny_embedder, tmp_path, monkeypatch,
                                                                          path, error, message):
    """path='' (an unset setting read as '') made a Chroma database in the current directory; path=123 raised
    pathlib's TypeError, which names no argument."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        O1Index(tiny_embedder, path=path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arguments, error, message", [
    ({"num_thoughts": True}, TypeError, r"num_thoughts must be an int >= 0 .*got True"),
    ({"num_thoughts": -1}, ValueError, r"num_thoughts must be >= 0 .*got -1"),
    ({"client": "http://localhost:8000"}, TypeError, r"client='http://localhost:8000' \(str\) is not a chromadb"),
    ({"embedder": None}, TypeError, r"embedder=None \(NoneType\) is not an O1Embedder"),
])
def test_index_arguments_of_the_wrong_kind_are_refused_naming_them(tiny_embedder, arguments, error, message):
    """num_thoughts was refused as 'k', a name O1Index does not take; a client or embedder of the wrong kind failed
    with an AttributeError from deep inside."""
    with pytest.raises(error, match=message):
        O1Index(**{"embedder": tiny_embedder, **arguments})


@pytest.mark.parametrize("where", [{}, {"path": "db"}])
def test_a_server_port_without_a_host_is_refused_not_ignored(tiny_embedder, tmp_path, monkeypatch, where):
    """port= without host= was ignored: O1Index(embedder, port=8001), meant for a local Chroma server, gave an index in
    memory whose documents were gone when the process ended."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"port=8001 is a Chroma server's port: pass host= with it"):
        O1Index(tiny_embedder, port=8001, **where)
    assert list(tmp_path.iterdir()) == []
