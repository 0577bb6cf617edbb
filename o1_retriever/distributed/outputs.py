"""Output shards and the manifest of a distributed run: each shard one Parquet file written whole under a temporary
name and renamed, and `o1_vectors.json` beside them recording the plan (see `shards.py` for the shards themselves).
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict
from pathlib import Path

from ..atomic import atomic_path, write_text_atomically
from ..validation import read_json_object
from .shards import Record, Shard, text_hash

MANIFEST = "o1_vectors.json"
MANIFEST_VERSION = 1
METADATA_KEY = b"o1_retriever"


# ---- output shards ----------------------------------------------------------------------------------------------
def write_shard(directory: Path, name: str, records: list[Record], vectors, thoughts=None, info: dict | None = None):
    """Write one output shard whole: to a temporary name, then renamed (atomic on one filesystem)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape[0] != len(records):
        raise ValueError(f"shard {name}: {len(records)} records but {vectors.shape[0]} vectors")
    columns = {
        "id": pa.array([r.id for r in records], pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
        "text_hash": pa.array([text_hash(r.text) for r in records], pa.string()),
    }
    if thoughts is not None:
        columns["thoughts"] = pa.array([list(t) for t in thoughts], pa.list_(pa.string()))
    meta = {**(info or {}), "shard": name, "rows": len(records),
            "worker": f"{socket.gethostname()}:{os.getpid()}"}
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    with atomic_path(directory / name) as temporary:  # a retried shard replaces the first try's whole
        pq.write_table(table, temporary)


def shard_info(path: Path) -> dict | None:
    """A complete output shard's recorded info (model fingerprint, rows, worker...), or None if it is missing or
    unreadable (a file cut short never has Parquet's footer)."""
    import pyarrow.parquet as pq
    try:
        meta = pq.read_metadata(path)
        info = json.loads((meta.metadata or {}).get(METADATA_KEY, b"{}"))
    except Exception:  # OSError, or pyarrow's ArrowInvalid for a file cut short
        return None
    return info if info.get("rows") == meta.num_rows else None


def remove_temporaries(directory: Path) -> None:
    """Delete half-written shards left by workers that died (one run per output folder at a time)."""
    for leftover in directory.glob(".part-*.tmp"):
        leftover.unlink(missing_ok=True)


# ---- the manifest -----------------------------------------------------------------------------------------------
def read_manifest(directory: str | os.PathLike) -> dict | None:
    path = Path(directory).expanduser() / MANIFEST
    manifest = read_json_object(path, "an o1-retriever vectors manifest", "; remove the folder and encode again")
    if manifest is None:
        return None
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path} is not an o1-retriever vectors manifest (version {MANIFEST_VERSION})")
    return manifest


def write_manifest(directory: Path, manifest: dict) -> None:
    write_text_atomically(directory / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def manifest_shards(manifest: dict) -> list[Shard]:
    return [Shard(**s) for s in manifest["shards"]]


def shard_dicts(shards: list[Shard]) -> list[dict]:
    return [asdict(s) for s in shards]
