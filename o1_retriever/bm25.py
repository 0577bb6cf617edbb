"""BM25 with bm25s, set up like Pyserini's flat BEIR index: the evaluation baseline and the lexical half of
hybrid search (`O1Index.search(..., hybrid=w)`).

Lucene BM25 (k1=0.9, b=0.4), Lucene's 33 English stopwords, Snowball English stemmer, title + text.
On SciFact test this reproduces Pyserini's published flat nDCG@10 (0.672) within 0.01.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BM25Config:
    k1: float = field(default=0.9, metadata={"help": "term-frequency saturation (Pyserini BEIR: 0.9)"})
    b: float = field(default=0.4, metadata={"help": "length normalisation (Pyserini BEIR: 0.4)"})
    method: str = field(default="lucene", metadata={"help": "bm25s scoring variant"})
    stopwords: str = field(default="en", metadata={"help": "bm25s stopword list ('en' = Lucene's 33 words)"})
    stemmer: str | None = field(default="english", metadata={"help": "PyStemmer algorithm; None for no stemming"})

    def as_dict(self) -> dict:
        return {"k1": self.k1, "b": self.b, "method": self.method, "stopwords": self.stopwords,
                "stemmer": self.stemmer}


def _imports():
    try:
        import bm25s
    except ImportError as e:
        raise ImportError("BM25 (the baseline and hybrid search) needs bm25s: pip install bm25s PyStemmer "
                          "(or pip install 'o1-retriever[hybrid]')") from e
    return bm25s


class BM25Searcher:
    """Index texts once, then search many queries: `search(queries, top_k)` -> [[(doc id, score)]]."""

    def __init__(self, ids: list[str], texts: list[str], config: BM25Config | None = None,
                 show_progress_bar: bool = False):
        if len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids but {len(texts)} texts; they must pair up")
        if not ids:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        bm25s = _imports()
        self.config = config or BM25Config()
        self.ids = list(ids)
        self._stemmer = self._make_stemmer()
        self._show = show_progress_bar
        tokens = bm25s.tokenize(texts, stopwords=self.config.stopwords, stemmer=self._stemmer,
                                show_progress=show_progress_bar)
        self.model = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method)
        self.model.index(tokens, show_progress=show_progress_bar)

    def _make_stemmer(self):
        if self.config.stemmer is None:
            return None
        try:
            import Stemmer
        except ImportError as e:
            raise ImportError("BM25 stemming needs PyStemmer: pip install PyStemmer") from e
        return Stemmer.Stemmer(self.config.stemmer).stemWords

    def search(self, queries: list[str], top_k: int = 100) -> list[list[tuple[str, float]]]:
        bm25s = _imports()
        top_k = min(top_k, len(self.ids))
        tokens = bm25s.tokenize(queries, stopwords=self.config.stopwords, stemmer=self._stemmer,
                                show_progress=False)
        # Queries made only of stopwords have no terms: bm25s needs at least one token to score.
        docs, scores = self.model.retrieve(tokens, k=top_k, show_progress=self._show, n_threads=1)
        results = []
        for row_docs, row_scores in zip(np.asarray(docs), np.asarray(scores)):
            results.append([(self.ids[int(d)], float(s)) for d, s in zip(row_docs, row_scores) if s > 0])
        return results


class CollectionBM25:
    """BM25 over the texts of a Chroma collection (anything with `count()` and `get()`), the lexical half of
    hybrid search in `O1Index` and the LlamaIndex and LangChain retrievers. Built in memory on the first search,
    rebuilt when the collection's ids change (another writer added or deleted documents: listing the ids costs
    milliseconds, against seconds of thinking) or after `invalidate()`; a text changed in place under the same id
    is only seen after `invalidate()`."""

    def __init__(self, collection):
        _imports()  # at construction, so a missing bm25s fails before any thinking
        self.collection = collection
        self._built: tuple[frozenset, BM25Searcher] | None = None

    def invalidate(self) -> None:
        self._built = None

    def search(self, queries: list[str], top_k: int, where: dict | None = None,
               where_document: dict | None = None) -> list[list[tuple[str, float]]]:
        """Top hits per query, as (id, score); a filter keeps only the ids Chroma's `where` admits."""
        ids = frozenset(self.collection.get(include=[])["ids"])
        if not ids:
            return [[] for _ in queries]
        if self._built is None or self._built[0] != ids:
            got = self.collection.get(include=["documents"])
            self._built = (frozenset(got["ids"]), BM25Searcher(got["ids"], [d or "" for d in got["documents"]]))
        hits = self._built[1].search(queries, top_k)
        if where is None and where_document is None:
            return hits
        seen = sorted({doc for row in hits for doc, _ in row})
        allowed = set(self.collection.get(ids=seen, where=where, where_document=where_document,
                                          include=[])["ids"]) if seen else set()
        return [[(doc, s) for doc, s in row if doc in allowed] for row in hits]


def chroma_collection(store):
    """The chromadb collection behind a LlamaIndex `ChromaVectorStore` (its public `client`) or a LangChain
    `Chroma` (its `_collection`: LangChain has no public accessor), or None for any other store. Only a real
    chromadb `Collection` counts: another store's client may have `count`/`get` methods that mean something else."""
    try:
        from chromadb.api.models.Collection import Collection
    except ImportError:
        return None
    for name in ("client", "_collection"):
        candidate = getattr(store, name, None)
        if isinstance(candidate, Collection):
            return candidate
    return None
