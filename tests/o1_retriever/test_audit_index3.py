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
    writer._set_incomplete(True)  # what an `add_resumable` run that died leaves behind
    assert watcher.incomplete
    with pytest.warns(UserWarning, match="incomplete"):
        watcher.search("river", top_k=1, k=0)
    assert writer.add_resumable(IDS, TEXTS) == (4, 0)  # a re-run finishes the job and clears the mark
    assert not watcher.incomplete and not writer.incomplete


def test_the_incomplete_mark_keeps_metadata_written_since_the_index_opened(tiny_embedder, tmp_path):
    """`_set_incomplete` wrote back the metadata cached at open, which modify() stores whole: keys the user or another
    index had set since were deleted."""
    index = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    index.add(IDS, TEXTS)
    mine = chromadb.PersistentClient(str(tmp_path)).get_collection("docs")
    mine.modify(metadata={"owner": "team-a", INCOMPLETE_KEY: False})
    assert index.add_resumable(IDS[:2], ["changed one", "changed two"]) == (2, 0)
    stored = chromadb.PersistentClient(str(tmp_path)).get_collection("docs").metadata
    assert stored == {"owner": "team-a", INCOMPLETE_KEY: False}
