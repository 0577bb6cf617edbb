"""Chroma round trips of `O1Index` counted against a real Chroma server (`chroma run`): each search and each written
batch asks only what it needs, the incomplete mark and the model check as before."""
from __future__ import annotations

import chromadb
import pytest

from o1_retriever.index import O1Index
from tests.fixtures import chroma_server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with chroma_server(tmp_path_factory.mktemp("chroma")) as address:
        yield address


class Counted:
    """A real HttpClient whose requests are recorded as (method, last path part): 'get', 'upsert', 'query', 'count',
    or 'collection' for the collection itself (its metadata)."""

    def __init__(self, address, collection: str):
        self.client = chromadb.HttpClient(**address)
        self.log: list[str] = []
        self.client._server._session.event_hooks["request"].append(
            lambda request: self.log.append(self._kind(request.url.path, collection)))

    @staticmethod
    def _kind(path: str, collection: str) -> str:
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return "collection" if last == collection or "/collections/" in path and len(last) == 36 else last

    def take(self) -> list[str]:
        out, self.log[:] = list(self.log), []
        return out


def test_a_search_asks_chroma_for_the_metadata_once_and_no_count(served, tiny_embedder):
    """Each search read the collection's metadata (the incomplete mark) and its count before the query: three round
    trips. The count told only an empty collection apart, which the query's answer tells too."""
    counted = Counted(served, "searched")
    index = O1Index(tiny_embedder, client=counted.client, collection="searched")
    assert index.search("anything", k=0) == []  # empty
    index.add(["a", "b"], ["the river and the ocean", "music of the city"])
    counted.take()
    hits = index.search("ocean water", top_k=5, k=1)
    assert [h.id for h in hits][:2] and len(hits) == 2  # top_k past the count: what is stored
    assert counted.take() == ["collection", "query"]
    assert index.search(["x", "y"], top_k=1, k=0, where={"none": 1}) == [[], []]


def test_a_written_batch_reads_its_stored_records_once(served, tiny_embedder):
    """Each batch of `add_resumable` read its stored records twice before embedding (once to skip the unchanged, once
    more, for the metadata keys a replaced record drops). Now: one read before embedding (what to skip) and one of
    the keys right before the write, so a record another process wrote meanwhile is replaced whole; `add` reads a
    later batch's keys again before its write for the same reason."""
    counted = Counted(served, "written")
    index = O1Index(tiny_embedder, client=counted.client, collection="written")
    ids, texts = [f"d{i}" for i in range(6)], [f"document number {i}" for i in range(6)]
    index.add(ids, texts, metadatas=[{"old": 1}] * 6, batch_size=3)
    counted.take()
    index.add(ids, texts, metadatas=[{"new": 2}] * 6, batch_size=3)  # replaces: "old" must go
    assert [k for k in counted.take() if k != "pre-flight-checks"] == ["get", "upsert", "get", "upsert"]
    assert all(m == {"new": 2} for m in index.collection.get(ids=ids, include=["metadatas"])["metadatas"])
    counted.take()
    index.add_resumable(ids, texts, metadatas=[{"third": 3}] * 6, batch_size=3)
    # the mark set (read, write), per batch: the records, the mark kept (read), the keys again, the write; the mark
    # cleared
    assert counted.take() == ["collection", "collection"] + ["get", "collection", "get", "upsert"] * 2 + \
        ["collection", "collection"]
    assert all(m == {"third": 3} for m in index.collection.get(ids=ids, include=["metadatas"])["metadatas"])
    assert not index.incomplete
