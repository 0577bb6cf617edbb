"""What `index` reads before it loads a model: the database, and whether the corpus is already stored."""
from __future__ import annotations

from pathlib import Path


def open_database(db: Path):
    """A Chroma client of the directory `db`, as O1Index opens it; an error says it with --db."""
    from .index import _client
    try:
        return _client(db, None, 0, create=True)
    except ValueError as e:
        raise ValueError(f"--db {db}: {e}") from e


def already_indexed(db: Path, args, passages) -> tuple[int, str] | None:
    """(records stored, model name) when every passage is already stored as the corpus has it, in a collection that
    is complete and records the model this run would load: `index` then has nothing to embed and loads no model.
    None when it may have work, or cannot tell without loading the model (another model or way of loading it, a
    record it cannot read): the run then loads it, and O1Index checks the model record (refusing another model)."""
    if not (db / "chroma.sqlite3").is_file():
        return None
    from .chroma import NAME, model_record
    from .index import typed_metadata
    from .index_marks import is_incomplete
    client = open_database(db)
    if args.collection not in {c if isinstance(c, str) else c.name for c in client.list_collections()}:
        return None
    collection = client.get_collection(args.collection, embedding_function=None)  # reads; loads no model
    function = (collection.configuration_json or {}).get("embedding_function") or {}
    record = model_record(collection)
    if (is_incomplete(collection.metadata or {}) or function.get("name") != NAME or not record
            or not _records_this_load(args, function.get("config") or {}, record)):
        return None
    for start in range(0, len(passages), 1000):  # one SQL statement per id list
        part = passages[start:start + 1000]
        stored = collection.get(ids=[p.id for p in part], include=["documents", "metadatas"])
        have = {i: (d, typed_metadata(m))
                for i, d, m in zip(stored["ids"], stored["documents"], stored["metadatas"])}
        if any(have.get(p.id) != (p.full_text, typed_metadata(p.metadata)) for p in part):
            return None
    return collection.count(), record["name"]


def _records_this_load(args, config: dict, record: dict) -> bool:
    """The collection's record names the model this run's --model, --dtype and --device would load, loaded the same
    way (a record that cannot tell, such as a quantized thinker's, is no match)."""
    from .device import dtype_name, resolve_device, resolve_dtype
    from .model_source import ModelSource
    options = config.get("options") or {}
    if (not record.get("fingerprint") or config.get("url") or args.quantization or options.get("quantization")
            or options.get("encoder_dtype")):
        return False
    if config.get("source") != ModelSource.of_path(args.model).as_dict():
        return False
    dtype = resolve_dtype(args.dtype, resolve_device(args.device))  # a bad --dtype or --device fails here, unloaded
    return (options.get("dtype") == dtype_name(dtype)
            and record.get("encoder_dtype") in (None, str(dtype).removeprefix("torch.")))
