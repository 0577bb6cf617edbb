"""Streaming encoded shards into Chroma: an ordinary O1 collection, written in batches, resumable.

The vectors come from the shards; the texts and metadata from the corpus rows the shards were made from (read
again shard by shard, and checked against each shard's ids and text hashes). The collection is created through
`O1Index`, so it records the O1 embedding function like any other: `O1Index`, `o1-retriever search`, plain Chroma
`query_texts`, LangChain and LlamaIndex open it as they open one `o1-retriever index` wrote. Records already stored
with the same text and metadata are skipped, so a re-run after a crash finishes the job, once per id.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..batching import show_progress
from ..validation import check_positive_int
from .runtime import require_pyarrow
from .outputs import manifest_shards, read_manifest
from .shards import read_shard, text_hash
from .workers import ModelSpec

PROGRESS_THRESHOLD = 256


@dataclass
class LoadResult:
    stored: int     # records written by this run
    skipped: int    # already stored with the same text and metadata
    count: int      # records in the collection afterwards
    seconds: float


def _complete_manifest(vectors: Path) -> dict:
    manifest = read_manifest(vectors)
    if manifest is None:
        raise FileNotFoundError(f"no encoded vectors at {str(vectors)!r} (expected the folder an encode run wrote, "
                                "holding o1_vectors.json)")
    if manifest["kind"] != "documents":
        raise ValueError(f"{vectors} holds encoded {manifest['kind']}; a store is loaded from encoded documents")
    if not manifest.get("complete"):
        raise ValueError(f"{vectors} is not complete: its encode run did not finish; run it again first")
    return manifest


def _check_inputs(manifest: dict) -> None:
    """Before a model loads or a store is touched: each corpus file the shards were encoded from is where it was, at
    the size it had (the texts and metadata are read from it)."""
    for shard in manifest_shards(manifest):
        if shard.start:
            continue  # one check per file, at its first shard
        path, was = Path(shard.path), manifest["inputs"][int(shard.name.split("-")[1])]["bytes"]
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r}, a corpus file these vectors were encoded from, is not there: the "
                                    "load reads each document's text and metadata from it; put it back, or encode "
                                    "the corpus again where it is now")
        if path.stat().st_size != was:
            raise ValueError(f"{str(path)!r} changed since it was encoded ({was} bytes then, {path.stat().st_size} "
                             "now); encode the corpus into a new folder")


def embedder_for(manifest: dict, device: str | None = None):
    """The model the shards were encoded with, loaded here (the dtype the workers used), checked by fingerprint."""
    spec = ModelSpec(manifest["model"]["model"], {**manifest["model"]["options"], "dtype": manifest["dtype"]})
    embedder = spec.load(device)
    if embedder.fingerprint != manifest["fingerprint"]:
        raise ValueError(f"the shards were encoded by model fingerprint {manifest['fingerprint']}; loading "
                         f"{spec.model or 'the default model'} here gives {embedder.fingerprint}: the model files "
                         "differ between the workers and this machine")
    return embedder


def load_into_chroma(vectors, *, path=None, host: str | None = None, port: int = 8000,
                     collection: str = "o1-retriever", embedder=None, client=None, batch_size: int = 1000,
                     show_progress_bar: bool | None = None) -> LoadResult:
    """Upsert every encoded document into the Chroma collection at `path` (PersistentClient), on a server at
    `host`:`port` (HttpClient), or on `client`. `embedder`: the model the shards were encoded with (None: loaded
    from what the shards record); the collection records it, so searches think with the same model."""
    from ..index import O1Index
    require_pyarrow()
    check_positive_int(batch_size, "batch_size")
    if sum(x is not None for x in (path, host, client)) != 1:
        raise ValueError("pass exactly one of path (a Chroma directory), host (a Chroma server) or client")
    started = time.perf_counter()
    vectors = Path(vectors).expanduser()
    manifest = _complete_manifest(vectors)
    _check_inputs(manifest)
    if embedder is None:
        embedder = embedder_for(manifest)
    elif embedder.fingerprint != manifest["fingerprint"]:
        raise ValueError(f"the shards were encoded by model fingerprint {manifest['fingerprint']}, this embedder "
                         f"is {embedder.fingerprint}; pass the model they were encoded with (or embedder=None)")
    index = O1Index(embedder, path=path, host=host, port=port, client=client, collection=collection)
    stored = skipped = 0
    dropped: set = set()
    show = show_progress(show_progress_bar, manifest["rows"], PROGRESS_THRESHOLD)
    # searches warn until the whole corpus is in; the mark stays if this run fails, or while another run writes
    with index._marked_incomplete() as run:
        with tqdm(total=manifest["rows"], unit="doc", desc="Loading into Chroma", disable=not show) as bar:
            for shard in manifest_shards(manifest):
                records = read_shard(shard, "documents", dropped)
                shard_vectors = _shard_vectors(vectors / shard.name, records)
                for start in range(0, len(records), batch_size):
                    part = records[start:start + batch_size]
                    have = index.collection.get(ids=[r.id for r in part], include=["documents", "metadatas"])
                    same = {i: (d, m or None) for i, d, m in zip(have["ids"], have["documents"], have["metadatas"])}
                    todo = [j for j, r in enumerate(part, start) if same.get(r.id) != (r.text, r.metadata)]
                    if todo:
                        run.keep()
                        index._replace([records[j].id for j in todo], [records[j].text for j in todo],
                                       shard_vectors[todo], [records[j].metadata for j in todo],
                                       dict(zip(have["ids"], have["metadatas"])))
                    stored += len(todo)
                    skipped += len(part) - len(todo)
                    bar.update(len(part))
    if dropped:
        warnings.warn(f"metadata field(s) {sorted(dropped)} were not stored (only str, int, float and bool values "
                      "are): flatten them into scalar fields to keep them", UserWarning, stacklevel=2)
    return LoadResult(stored, skipped, len(index), time.perf_counter() - started)


def _shard_vectors(path: Path, records) -> np.ndarray:
    """The shard's vectors, refused unless they are the records' ids and texts in the same order."""
    import pyarrow.parquet as pq
    table = pq.read_table(path, columns=["id", "vector", "text_hash"])
    if table["id"].to_pylist() != [r.id for r in records]:
        raise ValueError(f"{path} does not hold the ids of its corpus rows: the corpus changed since it was "
                         "encoded; encode it into a new folder")
    changed = [r.id for r, h in zip(records, table["text_hash"].to_pylist()) if h != text_hash(r.text)]
    if changed:
        raise ValueError(f"{len(changed)} document(s) changed since {path.name} was encoded (e.g. {changed[:3]}); "
                         "encode the corpus into a new folder")
    return vectors_of(table)


def vectors_of(table) -> np.ndarray:
    """The `vector` column of a shard as an (rows, dim) float32 array."""
    column = table["vector"].combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, width)


def read_vectors(vectors) -> dict:
    """Every shard of an encode run in shard order: {"ids": [...], "vectors": (n, dim) array, "text_hash": [...]}
    (and "thoughts" for queries). For inspection and moderate sizes; `load_into_chroma` streams instead."""
    require_pyarrow()
    import pyarrow as pa
    import pyarrow.parquet as pq
    vectors = Path(vectors).expanduser()
    manifest = read_manifest(vectors)
    if manifest is None or not manifest.get("complete"):
        raise ValueError(f"{str(vectors)!r} holds no complete encode run")
    table = pa.concat_tables([pq.read_table(vectors / s.name) for s in manifest_shards(manifest)])
    out = {"ids": table["id"].to_pylist(), "vectors": vectors_of(table), "text_hash": table["text_hash"].to_pylist()}
    if "thoughts" in table.column_names:
        out["thoughts"] = table["thoughts"].to_pylist()
    return out
