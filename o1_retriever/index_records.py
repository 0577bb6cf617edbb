"""The records of an `O1Index`: what a write is given, checked before anything is embedded or written, and the
writes themselves: each record replaced whole, in parts Chroma takes, put back after a failed write."""
from __future__ import annotations

import math
from collections.abc import Iterable

from .validation import as_text_list, check_positive_int, check_unicode

METADATA_TYPES = (str, int, float, bool)
# Chroma's own keys ('chroma:document'), ours, and the prefixes Chroma refuses ('$' and '#' start its operators)
RESERVED_KEY_PREFIXES = ("chroma:", "o1:", "$", "#")


def check_metadata(metadata, where: str) -> dict | None:
    """A copy of one document's metadata, or None for none, with numpy scalars and subclasses (enums) as plain str,
    int, float or bool. Values Chroma would refuse or change (nested dicts, None, NaN, ints past 64 bits) are refused
    here, naming the key, before anything is written; so are lists (not every Chroma 1.x stores them)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise TypeError(f"{where} must be a dict or None, got {type(metadata).__name__}")
    clean = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key.startswith(RESERVED_KEY_PREFIXES):
            raise ValueError(f"{where}: metadata key {key!r} is not allowed (a non-empty str, not starting with "
                             f"{' or '.join(map(repr, RESERVED_KEY_PREFIXES))})")
        check_unicode(key, f"{where}: metadata key {key!r}")
        if type(value).__module__ == "numpy" and hasattr(value, "item"):  # a scalar from an array or a DataFrame
            value = value.item()
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
        # the plain type (np.float64, np.str_ and enums subclass these): a re-run compares types with what is stored
        kind = next(kind for kind in METADATA_TYPES[::-1] if isinstance(value, kind))
        clean[key] = value if type(value) is kind else str.__str__(value) if kind is str else kind(value)
    return clean or None


def typed_metadata(metadata: dict | None) -> dict | None:
    """Metadata with each value's type beside it: Python finds 1 == True == 1.0, Chroma stores (and filters) them
    as different values, so a re-run that changes only the type must rewrite the record."""
    return {key: (type(value), value) for key, value in metadata.items()} if metadata else None


def check_records(ids, texts, metadatas, batch_size) -> tuple[list[str], list[str], list[dict | None]]:
    """The ids, texts and metadatas of one write as lists, or an error naming what is wrong."""
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


class RecordWrites:
    """Record writes on `self.collection` (of `self.client`), for `O1Index` and the distributed `load`."""

    _max_batch: int | None = None  # the most records Chroma takes in one write, asked on the first write

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

    def _replace(self, ids, texts, vectors, metas, stored: dict | None = None) -> None:
        """Upserts that replace each record whole. Chroma merges metadata on upsert: keys a record had and the new
        metadata lacks are sent as None, which deletes them. `stored`: {id: metadata} of the ids already stored, as
        the caller has just read them (an id not in it is new); None: read here."""
        for part in self._parts(len(ids)):
            part_ids, part_metas = list(ids[part]), metas[part]
            if stored is None:
                old = self.collection.get(ids=part_ids, include=["metadatas"])
                old_keys = {i: set(m or {}) for i, m in zip(old["ids"], old["metadatas"])}
            else:
                old_keys = {i: set(stored[i] or {}) for i in part_ids if i in stored}
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
