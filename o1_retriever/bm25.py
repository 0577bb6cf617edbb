"""BM25 with bm25s, set up like Pyserini's flat BEIR index: the evaluation baseline and the lexical half of
hybrid search over a Chroma collection (`hybrid.py`).

Lucene BM25 (k1=0.9, b=0.4), Lucene's 33 English stopwords, Snowball English stemmer, title + text.
It reproduces Pyserini's published flat BEIR figures (benchmarks/HISTORY.md).
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


def import_bm25s():
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
        bm25s = import_bm25s()
        self.config = config or BM25Config()
        self.ids = list(ids)
        self._row = {doc: row for row, doc in enumerate(self.ids)}  # a filter's ids to rows, without a corpus scan
        self._stemmer = self._make_stemmer()
        self._show = show_progress_bar
        tokens = bm25s.tokenize(texts, stopwords=self.config.stopwords, stemmer=self._stemmer,
                                show_progress=show_progress_bar)
        self.model = None  # no text has a term (stopwords, one-letter words, punctuation): nothing can match
        if tokens.vocab:  # bm25s cannot index an empty vocabulary
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

    def search(self, queries: list[str], top_k: int = 100, allowed=None) -> list[list[tuple[str, float]]]:
        """Top hits per query, as (id, score); `allowed` (a set of ids) ranks only those documents, so a filter
        that admits few of them still gets its own best top_k, not what is left of the whole corpus's."""
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self.ids), bool)
            mask[[self._row[doc] for doc in allowed if doc in self._row]] = True
        if self.model is None or (mask is not None and not mask.any()):
            return [[] for _ in queries]
        bm25s = import_bm25s()
        top_k = min(top_k, len(self.ids))
        tokens = bm25s.tokenize(queries, stopwords=self.config.stopwords, stemmer=self._stemmer,
                                show_progress=False)
        # Queries made only of stopwords have no terms: bm25s needs at least one token to score.
        docs, scores = self.model.retrieve(tokens, k=top_k, show_progress=self._show, n_threads=1,
                                           **({} if mask is None else {"weight_mask": mask.astype(np.float32)}))
        results = []
        for row_docs, row_scores in zip(np.asarray(docs), np.asarray(scores)):
            results.append([(self.ids[int(d)], float(s)) for d, s in zip(row_docs, row_scores) if s > 0])
        return results
