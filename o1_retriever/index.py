"""`O1Index`: document vectors in a Chroma collection, queries that think before they search."""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from .chroma import open_collection  # also registers the O1 function with Chroma, for any collection read here
from .fusion import resolve_hybrid
from .hybrid import CollectionBM25, dense_pool, fuse_with_bm25
# The names below were defined here first; they stay importable from this module.
from .index_client import (_check_collection, _client, _own_memory_database, check_client,  # noqa: F401
                           check_collection_name, check_database_path, existing_client)
from .index_marks import (INCOMPLETE_KEY, RUN_KEY_PREFIX, WriteRun, incomplete_message, is_incomplete,  # noqa: F401
                          stored_metadata)
from .index_records import (METADATA_TYPES, RESERVED_KEY_PREFIXES, RecordWrites, check_metadata,  # noqa: F401
                            check_records, typed_metadata)
from .validation import as_text_list, check_k, check_positive_int, plain_int


@dataclass
class Hit:
    id: str
    text: str
    score: float  # cosine similarity; with hybrid search, the fused score (see fusion.py)
    metadata: dict = field(default_factory=dict)
    thoughts: list[str] = field(default_factory=list)


class O1Index(RecordWrites):
    """A Chroma collection tied to one embedder: in a directory (`path=`), on a Chroma server (`host=`, `port=`), on
    a chromadb `client=`, or with none of them in memory, in a database of its own (another in-memory O1Index does
    not see it).

    The collection records the O1 embedding function (`o1_retriever.chroma`), so plain Chroma
    (`collection.query(query_texts=...)`, in any process that imported `o1_retriever.chroma`), LangChain's `Chroma`
    and LlamaIndex's `ChromaVectorStore` open it with the right model; another model is refused (`check_model`).
    `num_thoughts` is the thoughts per query that plain `query_texts` uses; `search(k=...)` (the engine's name, as
    the paper) chooses per call.

    `path=` serves one process at a time: a local Chroma keeps each collection's vector index in memory per process,
    so what another process writes meanwhile reaches this one's texts, metadata and count but not its searches (new
    and changed vectors are missed until a new process opens it). For several processes, such as an `index` run beside
    an app that searches, serve the directory (`chroma run --path DIR`) and pass `host=`."""

    def __init__(self, embedder, path: str | Path | None = None, collection: str = "o1-retriever", host: str | None = None,
                 port: int = 8000, client=None, create: bool = True, num_thoughts: int = 3):
        check_collection_name(collection)
        if not all(hasattr(embedder, name) for name in ("encode_documents", "encode_queries")):
            raise TypeError(f"embedder={embedder!r:.80} ({type(embedder).__name__}) is not an O1Embedder: pass one "
                            "from O1Embedder.from_pretrained(...) (or a RemoteEmbedder)")
        check_k(num_thoughts, "num_thoughts")
        if client is not None and (path is not None or host is not None):
            raise ValueError("pass client= or path=/host=, not both: client= is already bound to its database")
        if host is None and port != 8000:  # only a server has a port: the documents would go somewhere unmeant
            raise ValueError(f"port={port!r} is a Chroma server's port: pass host= with it (host='localhost' for one "
                             "on this machine); path= is a local directory and client= already knows its server")
        self.embedder = embedder
        if client is None:
            client = (_own_memory_database() if path is None and host is None
                      else _client(path, host, port, create))
        self.client = check_client(client)
        self.collection = open_collection(self.client, collection, embedder, num_thoughts=num_thoughts,
                                          create=create, where=path or (host and f"{host}:{port}"))
        self._bm25 = None  # CollectionBM25 over the stored texts, made by the first hybrid search
        self._warned_incomplete = False
        self._holds_documents = False  # seen holding some (a search then asks no count); a delete forgets it

    def __len__(self) -> int:
        return self.collection.count()

    def add(self, ids, texts, metadatas=None, batch_size: int = 64, show_progress_bar: bool | None = None) -> int:
        """Embed and upsert documents. A re-added id is replaced entirely: text, vector and metadata (keys it
        no longer has are removed). Inputs are checked and every vector is computed before the first write, and a
        write that fails part-way is rolled back, so the collection ends as it was or with every document. A process
        killed mid-write cannot roll back: the batches written stay, each record whole; add again (or use
        `add_resumable`, which marks the collection incomplete until a run finishes)."""
        ids, texts, metas = check_records(ids, texts, metadatas, batch_size)
        show = len(ids) >= 256 if show_progress_bar is None else show_progress_bar
        vectors = [v for s in tqdm(range(0, len(ids), batch_size), desc="Embedding", disable=not show)
                   for v in self.embedder.encode_documents(texts[s:s + batch_size], batch_size=min(batch_size, 32),
                                                           show_progress_bar=False)]  # this bar counts
        # Read after embedding, and again before each later batch: keys another writer added meanwhile are removed
        # too, so each record ends as one whole write, not a mix of two.
        before = self._get(ids, ["documents", "metadatas", "embeddings"])
        stored = dict(zip(before["ids"], before["metadatas"]))
        try:
            for start in range(0, len(ids), batch_size):
                end = start + batch_size
                self._replace(ids[start:end], texts[start:end], vectors[start:end], metas[start:end],
                              stored if start == 0 else None)
        except BaseException as error:
            self._restore(ids, before, error)
            raise
        finally:
            self._changed()
        self._holds_documents = self._holds_documents or bool(ids)
        return len(ids)

    def add_resumable(self, ids, texts, metadatas=None, batch_size: int = 64,
                      show_progress_bar: bool | None = None) -> tuple[int, int]:
        """Embed and store batch by batch, for corpora too large to redo: what is stored stays stored if the process
        dies, and a re-run skips every id already stored with the same text and metadata, so a crash at any moment
        followed by a re-run gives the whole corpus, once. The collection is marked incomplete (searches warn) until
        every run writing it has finished: runs at once keep each their own mark, and one that finishes also clears
        the marks of runs that died (`index_marks.py`). Returns (embedded, skipped)."""
        ids, texts, metas = check_records(ids, texts, metadatas, batch_size)
        show = len(ids) >= 256 if show_progress_bar is None else show_progress_bar
        embedded = 0
        with self._marked_incomplete() as run:
            for start in tqdm(range(0, len(ids), batch_size), desc="Indexing", disable=not show):
                end = start + batch_size
                stored = self._get(ids[start:end], ["documents", "metadatas"])  # in parts SQLite takes
                have = {i: (d, typed_metadata(m))
                        for i, d, m in zip(stored["ids"], stored["documents"], stored["metadatas"])}
                todo = [j for j in range(start, min(end, len(ids)))
                        if have.get(ids[j]) != (texts[j], typed_metadata(metas[j]))]
                if todo:
                    run.keep()  # before each write, not each batch: a re-run that skips most asks Chroma less
                    vectors = self.embedder.encode_documents([texts[j] for j in todo], batch_size=min(batch_size, 32),
                                                             show_progress_bar=False)  # the Indexing bar counts
                    # None: the stored keys read again after embedding, as add() reads them (one whole write wins)
                    self._replace([ids[j] for j in todo], [texts[j] for j in todo], list(vectors),
                                  [metas[j] for j in todo], None)
                    embedded += len(todo)
        self._holds_documents = self._holds_documents or bool(ids)
        return embedded, len(ids) - embedded

    @contextmanager
    def _marked_incomplete(self):
        """The collection marked incomplete while the block writes (`index_marks.py`): the mark stays if the block
        fails, or while another run writes."""
        run = WriteRun(self.client, self.collection).start()
        try:
            yield run
        except BaseException as error:
            run.fail(error)
            raise
        finally:
            self._changed()
        run.finish()

    def delete(self, ids=None, *, where: dict | None = None) -> int:
        """Remove documents by id, or every document a Chroma `where` filter matches; returns how many were stored.
        Ids the collection does not hold are ignored, as Chroma does; an id given twice is deleted once."""
        if (ids is None) == (where is None):
            raise ValueError("delete() takes ids or where=, one of them (to empty a collection, delete it in Chroma)")
        if ids is not None:  # Chroma refuses a repeated id
            found = self._get(list(dict.fromkeys(as_text_list(ids, "ids")[0])), [])["ids"]
        else:
            found = self._matching(where)
        try:
            self._delete(found)
        finally:
            self._changed()
            self._holds_documents = False
        return len(found)

    def _matching(self, where: dict | None, where_document: dict | None = None, limit: int | None = None) -> list:
        """Ids of the documents Chroma filters admit; a filter Chroma refuses is a ValueError naming it."""
        try:
            return self.collection.get(where=where, where_document=where_document, limit=limit, include=[])["ids"]
        except Exception as e:  # chromadb's InvalidArgumentError is no ValueError
            named = f"where={where!r}" + (f", where_document={where_document!r}" if where_document is not None else "")
            raise ValueError(f"{named}: not a valid Chroma filter: {e}") from e

    def _changed(self) -> None:
        if self._bm25 is not None:  # texts changed: the lexical index is rebuilt on the next hybrid search
            self._bm25.invalidate()

    def _stored_metadata(self) -> dict:
        return stored_metadata(self.client, self.collection.name)

    @property
    def incomplete(self) -> bool:
        """True while an `add_resumable` run writes, or after one that did not finish, until a re-run finishes."""
        return is_incomplete(self._stored_metadata())

    def clear_incomplete(self) -> None:
        """Remove every run's incomplete mark: for a run on another host that is known to be gone (this host cannot
        check another's processes, so a finishing run keeps such a mark). The documents stay as they are."""
        WriteRun(self.client, self.collection).clear_all()
        self._warned_incomplete = False

    def _warn_if_incomplete(self) -> None:
        if message := incomplete_message(self.collection.name, self._stored_metadata()):
            self._warned_incomplete = True
            warnings.warn(message, stacklevel=3)

    def _lexical(self) -> CollectionBM25:
        if self._bm25 is None:
            self._bm25 = CollectionBM25(self.collection)
        return self._bm25

    def search(self, query, top_k: int = 10, k: int = 3, where: dict | None = None,
               hybrid: bool | float | None = None, where_document: dict | None = None,
               show_progress_bar: bool | None = None) -> list:
        """Top hits for one query (list[Hit]) or for each of several (list[list[Hit]]).

        `hybrid=w` fuses the thinking dense search with BM25 over the stored texts: z-scored scores mixed as
        w·dense + (1−w)·BM25 over the top 100 of each (`fusion.py`); `hybrid=True` takes w=0.4, chosen on
        held-out data. `Hit.score` is then the fused score, not a cosine. Needs `pip install bm25s PyStemmer`.
        `where` filters on metadata and `where_document` on the text (`{"$contains": "..."}`), as in Chroma.
        `show_progress_bar`: the thinking bars (None: for many queries only)."""
        queries, single = as_text_list(query, "query")
        top_k = check_positive_int(plain_int(top_k), "top_k")  # np.int64 taken, as encode_queries takes it
        k = check_k(plain_int(k))
        hybrid = resolve_hybrid(hybrid)
        if where is not None or where_document is not None:  # a bad filter fails now, not after seconds of thinking
            self._matching(where, where_document, limit=1)
        if not self._warned_incomplete:  # warned once: no metadata read per search after
            self._warn_if_incomplete()
        if not queries:
            return []
        if not self._holds_documents:  # an empty collection answers before seconds of thinking
            if len(self) == 0:
                return [] if single else [[] for _ in queries]
            self._holds_documents = True
        lexical_index = self._lexical() if hybrid is not None else None  # before thinking: no bm25s fails fast
        pool = top_k if hybrid is None else dense_pool(top_k)  # Chroma returns fewer when it holds fewer
        enc = self.embedder.encode_queries(queries, k=k, return_thoughts=True, show_progress_bar=show_progress_bar)
        found = self.collection.query(query_embeddings=enc.embeddings.tolist(), n_results=pool,
                                      where=where, where_document=where_document,
                                      include=["documents", "metadatas", "distances"])
        if not any(found["ids"]):  # an empty collection, or none the filters admit: nothing for BM25 either
            return [] if single else [[] for _ in queries]
        results = []
        for qi in range(len(queries)):
            results.append([
                Hit(id=i, text=doc, score=1.0 - float(dist), metadata=dict(meta or {}), thoughts=list(enc.thoughts[qi]))
                for i, doc, meta, dist in zip(found["ids"][qi], found["documents"][qi],
                                              found["metadatas"][qi], found["distances"][qi])])
        if lexical_index is not None:
            fused = fuse_with_bm25(lexical_index, queries, [[(h.id, h.score) for h in row] for row in results],
                                   hybrid, top_k, where=where, where_document=where_document)
            results = [self._fused_hits(ranked, row, thoughts)
                       for ranked, row, thoughts in zip(fused, results, enc.thoughts)]
        return results[0] if single else results

    @staticmethod
    def _fused_hits(ranked: list, dense: list[Hit], thoughts: list[str]) -> list[Hit]:
        """Hits in fused order with fused scores; a BM25-only one carries what `fuse_with_bm25` fetched."""
        own = {h.id: h for h in dense}
        return [replace(own[f.id], score=f.score) if f.text is None
                else Hit(id=f.id, text=f.text, score=f.score, metadata=f.metadata, thoughts=list(thoughts))
                for f in ranked]
