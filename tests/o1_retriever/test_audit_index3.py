"""O1Index on a real persistent Chroma as a LlamaIndex/LangChain/Chroma user drives it: several indexes on one
database, the incomplete mark, and calls that fail leaving nothing changed."""
from __future__ import annotations

import chromadb
import pytest

from o1_retriever.index import INCOMPLETE_KEY, O1Index

IDS = ["d1", "d2", "d3", "d4"]
TEXTS = ["protein cell gene expression", "the river and the ocean water", "music history of the city",
         "solar energy plant and climate"]


def test_incomplete_is_read_from_the_store_not_from_when_the_index_opened(tiny_embedder, tmp_path):
    """`incomplete` read the metadata Chroma cached when the index opened: an index opened before another one
    started (or finished) an `index` run kept answering what was true then."""
    watcher = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    assert not watcher.incomplete
    writer = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    with pytest.raises(RuntimeError), writer._marked_incomplete():  # what an `add_resumable` run that died leaves
        raise RuntimeError("the run dies")
    assert watcher.incomplete
    with pytest.warns(UserWarning, match="incomplete"):
        watcher.search("river", top_k=1, k=0)
    assert writer.add_resumable(IDS, TEXTS) == (4, 0)  # a re-run finishes the job and clears the mark
    assert not watcher.incomplete and not writer.incomplete


def test_the_incomplete_mark_keeps_metadata_written_since_the_index_opened(tiny_embedder, tmp_path):
    """The incomplete mark wrote back the metadata cached at open, which modify() stores whole: keys the user or another
    index had set since were deleted."""
    index = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    index.add(IDS, TEXTS)
    mine = chromadb.PersistentClient(str(tmp_path)).get_collection("docs")
    mine.modify(metadata={"owner": "team-a", INCOMPLETE_KEY: False})
    assert index.add_resumable(IDS[:2], ["changed one", "changed two"]) == (2, 0)
    stored = chromadb.PersistentClient(str(tmp_path)).get_collection("docs").metadata
    assert stored == {"owner": "team-a", INCOMPLETE_KEY: False}


def test_a_rerun_that_changes_only_a_metadata_type_rewrites_it(tiny_embedder, tmp_path):
    """add_resumable compared metadata with ==, where 1 == True == 1.0: a re-run changing {"n": 1} to {"n": True}
    was counted as already stored and the old value stayed (Chroma filters them as different values)."""
    index = O1Index(tiny_embedder, path=tmp_path)
    metas = [{"n": 1}, {"f": 2.0}, {"n": 0, "x": 0.1}, None]
    assert index.add_resumable(IDS, TEXTS, metas) == (4, 0)
    assert index.add_resumable(IDS, TEXTS, metas) == (0, 4)  # stored values read back equal, types included
    assert index.add_resumable(IDS, TEXTS, [{"n": True}, {"f": 2}, {"n": 0, "x": 0.1}, None]) == (2, 2)
    got = index.collection.get(ids=IDS[:2], include=["metadatas"])["metadatas"]
    assert [type(m[k]) for m, k in zip(got, ["n", "f"])] == [bool, int]
    assert index.search("protein", top_k=4, k=0, where={"n": True})[0].id == "d1"


@pytest.mark.parametrize("meta, match", [
    ({"$and": 1}, r"metadata key '\$and' is not allowed .*'\$' or '#'"),
    ({"#document": 1}, r"metadata key '#document' is not allowed"),
    ({"s": "bad \ud800"}, r"metadatas\[0\] \(id 'd1'\)\['s'\] contains a lone surrogate"),
    ({"\ud800": 1}, r"metadata key '\\ud800' contains a lone surrogate"),
])
def test_metadata_chroma_refuses_is_refused_before_anything_is_written(tiny_embedder, tmp_path, meta, match):
    """Keys starting with '$' or '#' and lone surrogates passed the check and failed inside Chroma with
    InvalidArgumentError 'Invalid metadata at index 0', a TypeError or a UnicodeEncodeError naming no key; in
    add_resumable after the collection was marked incomplete."""
    index = O1Index(tiny_embedder, path=tmp_path)
    index.add(IDS, TEXTS, [{"n": i} for i in range(4)])
    before = index.collection.get(include=["documents", "metadatas"])
    for write in (index.add, index.add_resumable):
        with pytest.raises(ValueError, match=match):
            write(["d1", "d9"], ["changed text", "new text"], [meta, None])
    assert index.collection.get(include=["documents", "metadatas"]) == before and not index.incomplete


def test_metadatas_of_the_wrong_shape_are_named(tiny_embedder):
    """A generator failed with "object of type 'generator' has no len()"; a wrong count did not say the counts."""
    index = O1Index(tiny_embedder)
    assert index.add(IDS[:2], TEXTS[:2], ({"n": i} for i in range(2))) == 2
    assert [m["n"] for m in index.collection.get(ids=IDS[:2], include=["metadatas"])["metadatas"]] == [0, 1]
    with pytest.raises(ValueError, match=r"one dict \(or None\) per id: got 1 for 2 ids"):
        index.add(IDS[2:], TEXTS[2:], [{"n": 2}])
    for wrong in ({"n": 2}, "n=2", 7):
        with pytest.raises(TypeError, match=rf"metadatas must be a list .* got {type(wrong).__name__}"):
            index.add(IDS[2:], TEXTS[2:], wrong)
    assert len(index) == 2


@pytest.mark.parametrize("method", ["add", "add_resumable"])
def test_a_quiet_index_run_draws_no_embedder_bar(tiny_embedder, tmp_path, capsys, method):
    """The index draws its own bar per batch; the embedder drew one more for each batch of 64 or more texts, even with
    show_progress_bar=False (the `index` command worked around it by patching the embedder)."""
    index = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    ids = [f"d{i}" for i in range(64)]
    getattr(index, method)(ids, [f"{TEXTS[i % 4]} {i}" for i in range(64)], batch_size=64, show_progress_bar=False)
    assert capsys.readouterr().err == ""


def test_a_database_path_chroma_cannot_open_is_named(tiny_embedder):
    """Only the CLI named the path; O1Index(path=...) raised chromadb's InternalError, which names none."""
    with pytest.raises(ValueError, match=r"cannot open or create a Chroma database at '/proc/no-db'"):
        O1Index(tiny_embedder, path="/proc/no-db")
