"""What an O1 collection records about the model that embedded it, and the check that refuses another model.

The record (`fingerprint`, `dim`, `name`, `encoder_dtype`) lives in the O1 function's config inside the collection's
configuration (see chroma.py); collections O1Index wrote before that contract keep it in their metadata. Kept apart
from the embedding function so that reading or checking a record needs no chromadb.
"""
from __future__ import annotations

from .default_model import DEFAULT_NAME, MINILM_NAME

NAME = "o1_retriever"  # the name Chroma records the O1 function under (chroma.py registers it)
# Where collections written by O1Index before this contract kept the record (read, never written: Chroma cannot
# swap a collection's recorded 'default' function for ours, so such a collection stays as it is).
LEGACY_KEYS = {"fingerprint": "o1:fingerprint", "dim": "o1:dim", "name": "o1:model", "encoder_dtype": "o1:dtype"}
DEFAULT_MODEL_NAME = DEFAULT_NAME


def _encoder_dtype(embedder) -> str | None:
    """The encoder's weight dtype ('float32', 'bfloat16', ...): it changes the vectors, so a refusal names it."""
    try:
        return str(next(embedder.encoder.model.parameters()).dtype).removeprefix("torch.")
    except (AttributeError, StopIteration, TypeError):
        return None


def _record_of(embedder) -> dict:
    record = {"name": embedder.name, "dim": int(embedder.dim)}
    if dtype := _encoder_dtype(embedder):
        record["encoder_dtype"] = dtype
    return record


def model_record(collection) -> dict | None:
    """What a collection records about the model that embedded it (fingerprint, dim, name, encoder_dtype), from the
    O1 function in its configuration (or, for collections O1Index wrote before, its metadata); None when it records
    no O1 model."""
    function = (collection.configuration_json or {}).get("embedding_function") or {}
    if function.get("name") == NAME:
        config = function.get("config") or {}
        record = {key: config.get(key) for key in ("fingerprint", "dim", "name", "encoder_dtype")}
        record["name"] = record["name"] or config.get("model") or DEFAULT_MODEL_NAME
        return record
    meta = collection.metadata or {}
    if LEGACY_KEYS["fingerprint"] in meta:
        return {key: meta.get(legacy) for key, legacy in LEGACY_KEYS.items()}
    return None


def mismatch(collection: str, record: dict, embedder) -> str | None:
    """Why `embedder` cannot search a collection built as `record` (naming what differs), or None if it can."""
    if record.get("fingerprint") == embedder.fingerprint and record.get("dim") in (None, embedder.dim):
        return None
    built = (f"fingerprint {record.get('fingerprint')}, dim {record.get('dim')}"
             + (f", {record['encoder_dtype']}" if record.get("encoder_dtype") else ""))
    dtype = _encoder_dtype(embedder)
    mine = f"fingerprint {embedder.fingerprint}, dim {embedder.dim}" + (f", {dtype}" if dtype else "")
    if record.get("name") == embedder.name == DEFAULT_MODEL_NAME and record.get("dim") == 384:
        return (f"{collection} was built with the bundled default of before 2026-12-06 ({built}), whose encoder was "
                f"all-MiniLM-L6-v2 alone; the default is now {mine}. Open it with model {MINILM_NAME!r} (that "
                "earlier default), or index into a new collection.")
    if record.get("name") == embedder.name:
        hint = "the same --dtype"
        if embedder.source.kind == "composite" and record.get("encoder_dtype") not in (None, dtype):
            hint = f"encoder_dtype={record['encoder_dtype']!r}: its encoders ran in {record['encoder_dtype']}"
        return (f"{collection} was built with {embedder.name!r} loaded another way ({built}); this embedder loads it "
                f"as {mine}. The dtype, quantization or changed weights alter the vectors: open it with the same "
                f"settings it was built with (e.g. {hint}), or index into a new collection.")
    return (f"{collection} was built with model {record.get('name')!r} ({built}); this embedder is {embedder.name!r} "
            f"({mine}). Open it with the same model, or index into a new collection.")


def check_model(collection: str, record: dict, embedder) -> None:
    """Refuse (ValueError) an embedder whose vectors would not match the ones the collection holds."""
    why = mismatch(collection, record, embedder)
    if why:
        raise ValueError(why)


__all__ = ["check_model", "mismatch", "model_record"]
