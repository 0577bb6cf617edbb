"""Hybrid search over a Chroma collection: dense hits fused with BM25 over the collection's own texts.

The one path `O1Index.search(hybrid=w)` and the LangChain and LlamaIndex retrievers share. The caller runs its dense
query (asking for `dense_pool(top_k)` hits, filtered as it filters) and hands the (id, score) hits here with the
collection's `CollectionBM25`; `fuse_with_bm25` runs BM25 with the same filter, fuses (`fusion.py`) and fetches the
text and metadata of the documents BM25 alone found. It knows Chroma, not the frameworks: each integration finds the
collection behind its own store.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .bm25 import BM25Searcher, import_bm25s
from .fusion import POOL, fuse_many


def dense_pool(top_k: int) -> int:
    """How many hits each side contributes before fusing: the depth the fusion was chosen with, or top_k if deeper."""
    return max(top_k, POOL)


class CollectionBM25:
    """BM25 over the texts of a Chroma collection (anything with `count()` and `get()`). Built in memory on the
    first search, rebuilt when the collection's ids change (another writer added or deleted documents: listing the
    ids costs milliseconds, against seconds of thinking) or after `invalidate()`; a text changed in place under the
    same id is only seen after `invalidate()`."""

    def __init__(self, collection):
        import_bm25s()  # at construction, so a missing bm25s fails before any thinking
        self.collection = collection
        self._built: tuple[frozenset, BM25Searcher] | None = None
        self._generation = 0  # counts invalidate() calls: a BM25 built across one is not kept

    def invalidate(self) -> None:
        self._generation += 1
        self._built = None

    def search(self, queries: list[str], top_k: int, where: dict | None = None,
               where_document: dict | None = None) -> list[list[tuple[str, float]]]:
        """Top hits per query, as (id, score), among the documents Chroma's `where` / `where_document` admit."""
        ids = frozenset(self.collection.get(include=[])["ids"])
        if not ids:
            return [[] for _ in queries]
        generation, built = self._generation, self._built  # a writer in another thread may invalidate() at any time
        if built is None or built[0] != ids:
            got = self.collection.get(include=["documents"])
            built = (frozenset(got["ids"]), BM25Searcher(got["ids"], [d or "" for d in got["documents"]]))
            if self._generation == generation:  # else texts may have changed since they were read: this search
                self._built = built             # uses them, the next one reads the collection again
        allowed = None
        if where is not None or where_document is not None:  # ranked among these only, not filtered afterwards
            allowed = set(self.collection.get(where=where, where_document=where_document, include=[])["ids"])
        return built[1].search(queries, top_k, allowed=allowed)


@dataclass(frozen=True)
class FusedHit:
    id: str
    score: float  # the fused score (fusion.py), not a cosine
    # Filled only for a document this query's dense hits lack (BM25 alone found it); a dense hit's text and
    # metadata are the caller's own (a Hit, a LlamaIndex node, a LangChain Document).
    text: str | None = None
    metadata: dict = field(default_factory=dict)


def fuse_with_bm25(bm25: CollectionBM25, queries: list[str], dense: list[list[tuple[str, float]]],
                   dense_weight: float, top_k: int, where: dict | None = None,
                   where_document: dict | None = None) -> list[list[FusedHit]]:
    """Each query's dense (id, score) hits fused with BM25 over `bm25.collection`, best first, at most `top_k`.

    `where` / `where_document` (Chroma filters) are applied to the BM25 hits, as the caller applied them to its dense
    query. A hit BM25 names that the collection no longer has (another writer deleted it) rebuilds BM25 once, and
    is dropped if still missing: never a KeyError."""
    if len(dense) != len(queries):
        raise ValueError(f"got {len(queries)} queries but {len(dense)} dense rankings; one each per query")
    dense_ids = [{doc for doc, _ in row} for row in dense]
    for retry in (False, True):
        lexical = bm25.search(queries, dense_pool(top_k), where=where, where_document=where_document)
        ranked = fuse_many(dense, lexical, dense_weight, top_k)
        missing = sorted({doc for row, own in zip(ranked, dense_ids) for doc, _ in row if doc not in own})
        fetched: dict[str, tuple[str, dict]] = {}
        if missing:
            got = bm25.collection.get(ids=missing, include=["documents", "metadatas"])
            fetched = {i: (text, dict(meta or {})) for i, text, meta in zip(got["ids"], got["documents"],
                                                                           got["metadatas"])}
            if len(fetched) < len(missing):  # deleted since BM25 was built: BM25 is stale
                bm25.invalidate()
                if not retry:
                    continue
        break
    return [[FusedHit(doc, score) if doc in own else FusedHit(doc, score, *fetched[doc])
             for doc, score in row if doc in own or doc in fetched] for row, own in zip(ranked, dense_ids)]
