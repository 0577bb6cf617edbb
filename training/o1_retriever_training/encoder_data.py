"""The labelled queries `train-encoder` learns from, read from every --data folder before the thinker loads: a folder
whose qrels name no query or passage it holds then fails in seconds, naming the folder, instead of after the thinker
has loaded (and thought for the folders before it)."""
from __future__ import annotations

import random
from dataclasses import dataclass

from .data import labeled_pairs, load_beir


@dataclass
class FolderPairs:
    spec: str                   # DIR or DIR:SPLIT, as given to --data
    texts: list[str]            # query texts
    positives: list[set[str]]   # their relevant passage ids, each in `docs`
    docs: dict[str, str]        # the folder's corpus: id -> "title text"


def read_folder(spec: str, excluded: set[str], max_queries: int | None, rng: random.Random) -> FolderPairs:
    """One --data folder's usable (query, positives), held-out queries left out. Qrels naming a query or passage the
    folder lacks are skipped with counted warnings that name the folder; none usable at all is an error."""
    folder, _, split = spec.partition(":")
    data = load_beir(folder, split or "train")
    try:
        pairs = labeled_pairs(data, source=f"--data {spec}")
    except ValueError as e:
        raise ValueError(f"--data {spec!r}: {e}") from None
    pairs = sorted((p for p in pairs if p.query_id not in excluded), key=lambda p: p.query_id)
    if max_queries is not None and len(pairs) > max_queries:
        pairs = sorted(rng.sample(pairs, max_queries), key=lambda p: p.query_id)
    return FolderPairs(spec, [p.query for p in pairs], [set(p.positive_ids) for p in pairs], data.corpus)
