"""`O1Index`: document vectors in a Chroma collection, queries that think before they search."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .fusion import POOL, fuse_many, resolve_hybrid
from .validation import as_text_list, check_k, check_positive_int

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")
FINGERPRINT_KEY, DIM_KEY, MODEL_KEY = "o1:fingerprint", "o1:dim", "o1:model"


@dataclass
class Hit:
    id: str
    text: str
    score: float  # cosine similarity; with hybrid search, the fused score (see fusion.py)
    metadata: dict = field(default_factory=dict)
    thoughts: list[str] = field(default_factory=list)


def _client(path, host, port):
    import chromadb
    from chromadb.config import Settings
    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if host is not None:
        return chromadb.HttpClient(host=host, port=port, settings=settings)
    if path is None:
        return chromadb.EphemeralClient(settings=settings)
    return chromadb.PersistentClient(path=str(path), settings=settings)


class O1Index:
    """A Chroma collection tied to one embedder. `path=None` and no host: in-memory."""

    def __init__(self, embedder, path: str | Path | None = None, collection: str = "o1-retriever", host: str | None = None,
                 port: int = 8000, client=None):
        if not isinstance(collection, str) or not _NAME.fullmatch(collection):
            raise ValueError(f"collection={collection!r} is not a valid Chroma name: 3-512 characters from "
                             "[a-zA-Z0-9._-], starting and ending with a letter or digit")
        self.embedder = embedder
        self.client = client if client is not None else _client(path, host, port)
        meta = {FINGERPRINT_KEY: embedder.fingerprint, DIM_KEY: int(embedder.dim), MODEL_KEY: embedder.name,
                "hnsw:space": "cosine"}
        self.collection = self.client.get_or_create_collection(collection, metadata=meta)
        stored = self.collection.metadata or {}
        if stored.get(FINGERPRINT_KEY) != embedder.fingerprint or stored.get(DIM_KEY) != embedder.dim:
            raise ValueError(
                f"collection {collection!r} was built with model {stored.get(MODEL_KEY)!r} "
                f"(fingerprint {stored.get(FINGERPRINT_KEY)}, dim {stored.get(DIM_KEY)}); this embedder is "
                f"{embedder.name!r} (fingerprint {embedder.fingerprint}, dim {embedder.dim}). "
                "Open it with the same model, or index into a new collection.")
        self._bm25 = None  # CollectionBM25 over the stored texts, made by the first hybrid search

    def __len__(self) -> int:
        return self.collection.count()

    def add(self, ids, texts, metadatas=None, batch_size: int = 64, show_progress_bar: bool | None = None) -> int:
        """Embed and upsert documents; existing ids are updated. Inputs are checked and every vector is
        computed before the first write, so a bad input or a failed embedding leaves the collection as it was."""
        ids, _ = as_text_list(ids, "ids")
        texts, _ = as_text_list(texts, "texts")
        check_positive_int(batch_size, "batch_size")
        if len(ids) != len(texts):
            raise ValueError(f"ids and texts differ in length: {len(ids)} ids, {len(texts)} texts")
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise ValueError(f"ids must be unique within one add() call; repeated: {dupes}")
        if metadatas is not None:
            if isinstance(metadatas, dict) or len(metadatas) != len(ids):
                raise ValueError("metadatas must be a list with one dict (or None) per id")
            for i, m in enumerate(metadatas):
                if m is not None and not isinstance(m, dict):
                    raise TypeError(f"metadatas[{i}] must be a dict or None, got {type(m).__name__}")
        show = len(ids) >= 256 if show_progress_bar is None else show_progress_bar
        vectors = [self.embedder.encode_documents(texts[s:s + batch_size], batch_size=min(batch_size, 32))
                   for s in tqdm(range(0, len(ids), batch_size), desc="Embedding", disable=not show)]
        for b, start in enumerate(range(0, len(ids), batch_size)):
            end = start + batch_size
            metas = None if metadatas is None else [m or None for m in metadatas[start:end]]
            self.collection.upsert(ids=ids[start:end], documents=texts[start:end], embeddings=vectors[b].tolist(),
                                   metadatas=metas)
        if self._bm25 is not None:  # texts changed: the lexical index is rebuilt on the next hybrid search
            self._bm25.invalidate()
        return len(ids)

    def _lexical(self):
        if self._bm25 is None:
            from .bm25 import CollectionBM25
            self._bm25 = CollectionBM25(self.collection)
        return self._bm25

    def search(self, query, top_k: int = 10, k: int = 3, where: dict | None = None,
               hybrid: bool | float | None = None) -> list:
        """Top hits for one query (list[Hit]) or for each of several (list[list[Hit]]).

        `hybrid=w` fuses the thinking dense search with BM25 over the stored texts: z-scored scores mixed as
        w·dense + (1−w)·BM25 over the top 100 of each (`fusion.py`); `hybrid=True` takes w=0.4, chosen on
        held-out data. `Hit.score` is then the fused score, not a cosine. Needs `pip install bm25s PyStemmer`."""
        queries, single = as_text_list(query, "query")
        check_positive_int(top_k, "top_k")
        check_k(k)
        hybrid = resolve_hybrid(hybrid)
        count = len(self)
        if count == 0:
            return [] if single else [[] for _ in queries]
        lexical_index = self._lexical() if hybrid is not None else None  # before thinking: no bm25s fails fast
        pool = min(top_k if hybrid is None else max(top_k, POOL), count)
        enc = self.embedder.encode_queries(queries, k=k, return_thoughts=True)
        found = self.collection.query(query_embeddings=enc.embeddings.tolist(), n_results=pool,
                                      where=where, include=["documents", "metadatas", "distances"])
        results = []
        for qi in range(len(queries)):
            results.append([
                Hit(id=i, text=doc, score=1.0 - float(dist), metadata=dict(meta or {}), thoughts=list(enc.thoughts[qi]))
                for i, doc, meta, dist in zip(found["ids"][qi], found["documents"][qi],
                                              found["metadatas"][qi], found["distances"][qi])])
        if lexical_index is not None:
            lexical = lexical_index.search(queries, pool, where=where)
            results = self._fuse(results, lexical, hybrid, top_k, enc.thoughts)
        return results[0] if single else results

    def _fuse(self, dense: list[list[Hit]], lexical: list, weight: float, top_k: int,
              thoughts: list[list[str]]) -> list[list[Hit]]:
        fused = fuse_many([[(h.id, h.score) for h in row] for row in dense], lexical, weight, top_k)
        known = {h.id: h for row in dense for h in row}
        missing = sorted({doc for row in fused for doc, _ in row} - set(known))
        if missing:  # lexical-only hits: fetch their texts and metadata
            got = self.collection.get(ids=missing, include=["documents", "metadatas"])
            for i, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                known[i] = Hit(id=i, text=doc, score=0.0, metadata=dict(meta or {}))
        return [[Hit(id=doc, text=known[doc].text, score=score, metadata=known[doc].metadata, thoughts=list(ts))
                 for doc, score in ranked] for ranked, ts in zip(fused, thoughts)]
