"""`O1Index`: document vectors in a Chroma collection, queries that think before they search."""
from __future__ import annotations

import ipaddress
import math
import re
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from .chroma import open_collection  # also registers the O1 function with Chroma, for any collection read here
from .fusion import resolve_hybrid
from .hybrid import CollectionBM25, dense_pool, fuse_with_bm25
from .validation import as_text_list, check_k, check_positive_int, check_unicode

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")
# Set in the collection's metadata while `add_resumable` (the `index` command) runs: a collection that still has
# it was left half-written by a run that died, and searching it warns until a re-run finishes the job.
INCOMPLETE_KEY = "o1:incomplete"
METADATA_TYPES = (str, int, float, bool)
# Chroma's own keys ('chroma:document'), ours, and the prefixes Chroma refuses ('$' and '#' start its operators)
RESERVED_KEY_PREFIXES = ("chroma:", "o1:", "$", "#")


@dataclass
class Hit:
    id: str
    text: str
    score: float  # cosine similarity; with hybrid search, the fused score (see fusion.py)
    metadata: dict = field(default_factory=dict)
    thoughts: list[str] = field(default_factory=list)


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
        return True
    except ValueError:
        return False


def check_collection_name(collection) -> str:
    """`collection` if Chroma takes it as a name; else a ValueError saying the rule (Chroma's own refusal is no
    ValueError, and the CLI checks it before a model loads)."""
    if not isinstance(collection, str) or not _NAME.fullmatch(collection) or ".." in collection or _is_ipv4(collection):
        raise ValueError(f"collection={collection!r} is not a valid Chroma name: 3-512 characters from "
                         "[a-zA-Z0-9._-], starting and ending with a letter or digit, no '..', not an IPv4 address")
    return collection


def _client(path, host, port, create: bool):
    import chromadb
    # Chroma's default settings, as a plain chromadb client has: Chroma keeps one instance per database in a process
    # and refuses a second client of it with other settings, so O1Index and the user's own client must agree
    # (telemetry follows $ANONYMIZED_TELEMETRY, as for any Chroma client).
    if host is not None:
        if path is not None:
            raise ValueError(f"pass path= (a local Chroma directory) or host= (a Chroma server), not both: got "
                             f"path={str(path)!r} and host={host!r}")
        try:
            return chromadb.HttpClient(host=host, port=port)
        except Exception as e:  # Chroma's message names neither host nor port
            raise ValueError(f"could not connect to a Chroma server at {host}:{port}: {e} (start one with "
                             "`chroma run --host HOST --port PORT`, or check host= and port=)") from e
    if path is None:
        return chromadb.EphemeralClient()
    path = check_database_path(path)
    if not create and not (path / "chroma.sqlite3").is_file():
        raise FileNotFoundError(f"no Chroma database at {str(path)!r} (expected the directory that "
                                "`o1-retriever index --db` wrote, holding chroma.sqlite3)")
    try:
        return chromadb.PersistentClient(path=str(path))
    except Exception as e:  # chromadb's errors (an InternalError for a folder it cannot write) name no path
        raise ValueError(f"cannot open or create a Chroma database at {str(path)!r} ({e})") from e


def check_database_path(path) -> Path:
    """`path` as a local Chroma database may be made there: a file in its place is refused."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file; a Chroma database is a directory (pass --db DIR)")
    return path


def _own_memory_database():
    """A client of a new, empty database in this process's in-memory Chroma. Every EphemeralClient in a process
    shares one in-memory Chroma: without a database of its own, a second in-memory index would open the first one's
    collection (and refuse another model). Like any in-memory Chroma data it lasts as long as the process: the index's
    `collection` or `client`, kept after the index is dropped, still reads it."""
    import chromadb
    name = f"o1-{uuid.uuid4().hex}"
    chromadb.AdminClient().create_database(name)
    return chromadb.EphemeralClient(database=name)


def _check_collection(client, name: str, where) -> None:
    names = sorted(c if isinstance(c, str) else c.name for c in client.list_collections())
    if name not in names:
        raise ValueError(f"no collection {name!r} in {str(where or 'this client')!r}; it has {names}")


def existing_client(path, collection: str):
    """A client for a Chroma database that exists and holds `collection`; creates nothing (for `search`)."""
    client = _client(path, None, 8000, create=False)
    _check_collection(client, collection, path)
    return client


def check_metadata(metadata, where: str) -> dict | None:
    """A copy of one document's metadata, or None for none. Values Chroma would refuse or change (nested dicts,
    None, NaN, ints past 64 bits) are refused here, naming the key, before anything is written; so are lists
    (not every Chroma 1.x stores them)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise TypeError(f"{where} must be a dict or None, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key.startswith(RESERVED_KEY_PREFIXES):
            raise ValueError(f"{where}: metadata key {key!r} is not allowed (a non-empty str, not starting with "
                             f"{' or '.join(map(repr, RESERVED_KEY_PREFIXES))})")
        check_unicode(key, f"{where}: metadata key {key!r}")
        if not isinstance(value, METADATA_TYPES):
            raise TypeError(f"{where}[{key!r}] is a {type(value).__name__} ({value!r:.60}); metadata values must be "
                            "str, int, float or bool (flatten nested fields into keys of their own)")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}[{key!r}] is {value}; metadata numbers must be finite")
        if isinstance(value, int) and not -2**63 <= value < 2**63:  # Chroma would store a rounded float
            raise ValueError(f"{where}[{key!r}] is {value}; metadata ints must fit in 64 bits "
                             "(-2**63 to 2**63-1): store a larger number as a str")
        if isinstance(value, str):
            check_unicode(value, f"{where}[{key!r}]")
    return dict(metadata) or None


def typed_metadata(metadata: dict | None) -> dict | None:
    """Metadata with each value's type beside it: Python finds 1 == True == 1.0, Chroma stores (and filters) them
    as different values, so a re-run that changes only the type must rewrite the record."""
    return {key: (type(value), value) for key, value in metadata.items()} if metadata else None


class O1Index:
    """A Chroma collection tied to one embedder: in a directory (`path=`), on a Chroma server (`host=`, `port=`), on
    a chromadb `client=`, or with none of them in memory, in a database of its own (another in-memory O1Index does
    not see it).

    The collection records the O1 embedding function (`o1_retriever.chroma`), so plain Chroma
    (`collection.query(query_texts=...)`, in any process that imported `o1_retriever.chroma`), LangChain's `Chroma`
    and LlamaIndex's `ChromaVectorStore` open it with the right model; another model is refused (`check_model`).
    `num_thoughts` is the thoughts per query that plain `query_texts` uses; `search(k=...)` (the engine's name, as
    the paper) chooses per call."""

    def __init__(self, embedder, path: str | Path | None = None, collection: str = "o1-retriever", host: str | None = None,
                 port: int = 8000, client=None, create: bool = True, num_thoughts: int = 3):
        check_collection_name(collection)
        if client is not None and (path is not None or host is not None):
            raise ValueError("pass client= or path=/host=, not both: client= is already bound to its database")
        self.embedder = embedder
        if client is None:
            client = (_own_memory_database() if path is None and host is None
                      else _client(path, host, port, create))
        self.client = client
        self.collection = open_collection(self.client, collection, embedder, num_thoughts=check_k(num_thoughts),
                                          create=create, where=path or (host and f"{host}:{port}"))
        self._bm25 = None  # CollectionBM25 over the stored texts, made by the first hybrid search
        self._max_batch = None  # the most records Chroma takes in one write, asked on the first write
        self._warned_incomplete = False

    def __len__(self) -> int:
        return self.collection.count()

    def _check(self, ids, texts, metadatas, batch_size) -> tuple[list[str], list[str], list[dict | None]]:
        ids, _ = as_text_list(ids, "ids")
        texts, _ = as_text_list(texts, "texts")
        check_positive_int(batch_size, "batch_size")
        if len(ids) != len(texts):
            raise ValueError(f"ids and texts differ in length: {len(ids)} ids, {len(texts)} texts")
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise ValueError(f"ids must be unique within one add() call; repeated: {dupes}")
        if metadatas is None:
            return ids, texts, [None] * len(ids)
        if isinstance(metadatas, (dict, str, bytes)) or not isinstance(metadatas, Iterable):
            raise TypeError(f"metadatas must be a list with one dict (or None) per id, got {type(metadatas).__name__}")
        metadatas = list(metadatas)  # a generator or tuple as well as a list
        if len(metadatas) != len(ids):
            raise ValueError(f"metadatas must have one dict (or None) per id: got {len(metadatas)} for {len(ids)} ids")
        return ids, texts, [check_metadata(m, f"metadatas[{i}] (id {ids[i]!r})") for i, m in enumerate(metadatas)]

    def add(self, ids, texts, metadatas=None, batch_size: int = 64, show_progress_bar: bool | None = None) -> int:
        """Embed and upsert documents. A re-added id is replaced entirely: text, vector and metadata (keys it
        no longer has are removed). Inputs are checked and every vector is computed before the first write, and a
        write that fails part-way is rolled back, so the collection ends as it was or with every document."""
        ids, texts, metas = self._check(ids, texts, metadatas, batch_size)
        show = len(ids) >= 256 if show_progress_bar is None else show_progress_bar
        vectors = [v for s in tqdm(range(0, len(ids), batch_size), desc="Embedding", disable=not show)
                   for v in self.embedder.encode_documents(texts[s:s + batch_size], batch_size=min(batch_size, 32),
                                                           show_progress_bar=False)]  # this bar counts
        before = self._get(ids, ["documents", "metadatas", "embeddings"])
        try:
            for start in range(0, len(ids), batch_size):
                end = start + batch_size
                self._replace(ids[start:end], texts[start:end], vectors[start:end], metas[start:end])
        except BaseException as error:
            self._restore(ids, before, error)
            raise
        finally:
            self._changed()
        return len(ids)

    def add_resumable(self, ids, texts, metadatas=None, batch_size: int = 64,
                      show_progress_bar: bool | None = None) -> tuple[int, int]:
        """Embed and store batch by batch, for corpora too large to redo: what is stored stays stored if the process
        dies, and a re-run skips every id already stored with the same text and metadata, so a crash at any moment
        followed by a re-run gives the whole corpus, once. While it runs the collection is marked incomplete
        (searches warn). Returns (embedded, skipped)."""
        ids, texts, metas = self._check(ids, texts, metadatas, batch_size)
        show = len(ids) >= 256 if show_progress_bar is None else show_progress_bar
        self._set_incomplete(True)
        embedded = 0
        try:
            for start in tqdm(range(0, len(ids), batch_size), desc="Indexing", disable=not show):
                end = start + batch_size
                stored = self.collection.get(ids=ids[start:end], include=["documents", "metadatas"])
                have = {i: (d, typed_metadata(m))
                        for i, d, m in zip(stored["ids"], stored["documents"], stored["metadatas"])}
                todo = [j for j in range(start, min(end, len(ids)))
                        if have.get(ids[j]) != (texts[j], typed_metadata(metas[j]))]
                if todo:
                    vectors = self.embedder.encode_documents([texts[j] for j in todo], batch_size=min(batch_size, 32),
                                                             show_progress_bar=False)  # the Indexing bar counts
                    self._replace([ids[j] for j in todo], [texts[j] for j in todo], list(vectors),
                                  [metas[j] for j in todo])
                    embedded += len(todo)
        finally:
            self._changed()
        self._set_incomplete(False)
        return embedded, len(ids) - embedded

    def delete(self, ids=None, *, where: dict | None = None) -> int:
        """Remove documents by id, or every document a Chroma `where` filter matches; returns how many were stored.
        Ids the collection does not hold are ignored, as Chroma does."""
        if (ids is None) == (where is None):
            raise ValueError("delete() takes ids or where=, one of them (to empty a collection, delete it in Chroma)")
        found = self._get(as_text_list(ids, "ids")[0], [])["ids"] if ids is not None else self._matching(where)
        try:
            self._delete(found)
        finally:
            self._changed()
        return len(found)

    def _matching(self, where: dict | None, where_document: dict | None = None, limit: int | None = None) -> list:
        """Ids of the documents Chroma filters admit; a filter Chroma refuses is a ValueError naming it."""
        try:
            return self.collection.get(where=where, where_document=where_document, limit=limit, include=[])["ids"]
        except Exception as e:  # chromadb's InvalidArgumentError is no ValueError
            named = f"where={where!r}" + (f", where_document={where_document!r}" if where_document is not None else "")
            raise ValueError(f"{named}: not a valid Chroma filter: {e}") from e

    def _get(self, ids: list[str], include: list[str], chunk: int = 1000) -> dict:
        """`collection.get(ids=...)` in chunks (one SQL statement per id list), merged."""
        out: dict = {"ids": [], **{name: [] for name in include}}
        for start in range(0, len(ids), chunk):
            got = self.collection.get(ids=ids[start:start + chunk], include=include)
            out["ids"] += got["ids"]
            for name in include:
                out[name] += list(got[name])
        return out

    def _parts(self, count: int):
        """Slices of at most Chroma's maximum batch (5461 in chromadb 1.5): it refuses a larger write or delete,
        whatever `batch_size` the caller chose."""
        if self._max_batch is None:
            self._max_batch = self.client.get_max_batch_size()
        return (slice(start, start + self._max_batch) for start in range(0, count, self._max_batch))

    def _delete(self, ids: list[str]) -> None:
        for part in self._parts(len(ids)):
            self.collection.delete(ids=ids[part])

    def _replace(self, ids, texts, vectors, metas) -> None:
        """Upserts that replace each record whole. Chroma merges metadata on upsert: keys a record had and the new
        metadata lacks are sent as None, which deletes them."""
        for part in self._parts(len(ids)):
            part_ids, part_metas = list(ids[part]), metas[part]
            old = self.collection.get(ids=part_ids, include=["metadatas"])
            old_keys = {i: set(m or {}) for i, m in zip(old["ids"], old["metadatas"])}
            full = []
            for i, m in zip(part_ids, part_metas):
                gone = old_keys.get(i, set()) - set(m or {})
                full.append({**dict.fromkeys(sorted(gone)), **(m or {})} or None)
            self.collection.upsert(ids=part_ids, documents=list(texts[part]),
                                   embeddings=[[float(x) for x in v] for v in vectors[part]],
                                   metadatas=full if any(m is not None for m in full) else None)

    def _restore(self, ids: list[str], before: dict, error: BaseException) -> None:
        """Put back what `before` held for `ids` after a failed write: new ids deleted, old records rewritten."""
        try:
            had = set(before["ids"])
            new = [i for i in ids if i not in had]
            self._delete(new)
            if before["ids"]:
                self._replace(before["ids"], before["documents"], before["embeddings"],
                              [m or None for m in before["metadatas"]])
        except Exception as undo:  # say both: the write failed and the collection may now be mixed
            raise RuntimeError(f"add() failed ({error!r}) and rolling back failed too ({undo!r}): the collection "
                               f"may hold part of this add; re-run it") from undo

    def _changed(self) -> None:
        if self._bm25 is not None:  # texts changed: the lexical index is rebuilt on the next hybrid search
            self._bm25.invalidate()

    def _stored_metadata(self) -> dict:
        """The collection's metadata as stored now. `collection.metadata` is what Chroma read when the collection was
        opened: a change made since by another index or process (the incomplete mark of an `index` run) is not in it."""
        return dict(self.client.get_collection(self.collection.name, embedding_function=None).metadata or {})

    def _set_incomplete(self, on: bool) -> None:
        # modify() replaces the whole metadata and refuses the hnsw:* keys (the space lives in the configuration);
        # it starts from the stored metadata, so keys another writer set since this index opened are kept.
        meta = {k: v for k, v in self._stored_metadata().items() if not k.startswith("hnsw:")}
        if bool(meta.get(INCOMPLETE_KEY)) == on:
            return
        # False rather than removed: Chroma refuses to set an empty metadata dict, and the model record no longer
        # lives in the metadata, so this key may be its only one.
        meta[INCOMPLETE_KEY] = "an `index` run has not finished; re-run it to complete this collection" if on else False
        self.collection.modify(metadata=meta)

    @property
    def incomplete(self) -> bool:
        """True while (or after a crash of) an `add_resumable` run that has not finished."""
        return bool(self._stored_metadata().get(INCOMPLETE_KEY))

    def _lexical(self) -> CollectionBM25:
        if self._bm25 is None:
            self._bm25 = CollectionBM25(self.collection)
        return self._bm25

    def search(self, query, top_k: int = 10, k: int = 3, where: dict | None = None,
               hybrid: bool | float | None = None, where_document: dict | None = None) -> list:
        """Top hits for one query (list[Hit]) or for each of several (list[list[Hit]]).

        `hybrid=w` fuses the thinking dense search with BM25 over the stored texts: z-scored scores mixed as
        w·dense + (1−w)·BM25 over the top 100 of each (`fusion.py`); `hybrid=True` takes w=0.4, chosen on
        held-out data. `Hit.score` is then the fused score, not a cosine. Needs `pip install bm25s PyStemmer`.
        `where` filters on metadata and `where_document` on the text (`{"$contains": "..."}`), as in Chroma."""
        queries, single = as_text_list(query, "query")
        check_positive_int(top_k, "top_k")
        check_k(k)
        hybrid = resolve_hybrid(hybrid)
        if where is not None or where_document is not None:  # a bad filter fails now, not after seconds of thinking
            self._matching(where, where_document, limit=1)
        if self.incomplete and not self._warned_incomplete:
            self._warned_incomplete = True
            warnings.warn(f"collection {self.collection.name!r} is incomplete: a run writing it (`o1-retriever index`, "
                          "`add_resumable`, a distributed `load`) did not finish; re-run it (stored documents are kept) "
                          "before trusting these results", stacklevel=2)
        count = len(self)
        if count == 0 or not queries:
            return [] if single else [[] for _ in queries]
        lexical_index = self._lexical() if hybrid is not None else None  # before thinking: no bm25s fails fast
        pool = min(top_k if hybrid is None else dense_pool(top_k), count)
        enc = self.embedder.encode_queries(queries, k=k, return_thoughts=True)
        found = self.collection.query(query_embeddings=enc.embeddings.tolist(), n_results=pool,
                                      where=where, where_document=where_document,
                                      include=["documents", "metadatas", "distances"])
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
