"""Hybrid retrieval: fuse a dense ranking with a lexical (BM25) one.

Each list's scores are z-normalised over its own candidates (cosines and BM25 scores live on different
scales), then mixed as `w * dense + (1 - w) * lexical`. A document that only one list found counts, in the other, one
standard deviation below that list's weakest candidate: it was not retrieved there. So a document both lists
found beats one that only one list found with the same z-score, and a keyword match that BM25 alone finds in
a small collection (one hit, so z = 0) still lifts it above the documents BM25 did not match.

Why z-scores and not reciprocal-rank fusion: on held-out queries z-score fusion beat BM25 alone, while RRF fell
below BM25 at every weight tried: ranks throw away how far ahead a confident hit is (`scripts/fusion_methods.py`;
the figures are in benchmarks/HISTORY.md). Where exactly the missing document lands under the floor hardly matters.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

# Chosen on held-out queries by `choose --system o1+bm25 --k 3`, and again for each later default
# (`benchmarks/hybrid_dev/`, benchmarks/HISTORY.md): the weaker side of the default model's fusion is its dense half.
DEFAULT_DENSE_WEIGHT = 0.4
POOL = 100  # candidates per side that hybrid search fuses: the depth its share and method were chosen with
MISSING_MARGIN = 1.0  # how far below a list's weakest z-score a document that the list did not find lands


def check_dense_weight(weight) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"dense_weight must be a number in [0, 1], got {weight!r}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"dense_weight must be in [0, 1] (1: dense only, 0: BM25 only), got {weight}")
    return float(weight)


def resolve_hybrid(hybrid) -> float | None:
    """A `hybrid=` argument as a dense share: True takes the default, None or False turn fusion off."""
    if hybrid is True:
        return DEFAULT_DENSE_WEIGHT
    if hybrid is None or hybrid is False:
        return None
    try:
        return check_dense_weight(hybrid)
    except (TypeError, ValueError) as e:  # name the argument the caller passed, not only the fusion parameter
        raise type(e)(f"hybrid={hybrid!r} is not allowed: pass True (dense share {DEFAULT_DENSE_WEIGHT}), False or "
                      f"None (dense only), or the dense share as a number (fusion's dense_weight); {e}") from None


def check_top_k(top_k) -> int | None:
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"top_k must be an int >= 0 or None (all), got {top_k!r}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 or None (all), got {top_k}")
    return top_k


def _zscores(hits: Sequence[tuple[str, float]], side: str) -> dict[str, float]:
    if not hits:
        return {}
    scores = [float(s) for _, s in hits]
    bad = next((i for i, s in enumerate(scores) if not math.isfinite(s)), None)
    if bad is not None:  # one NaN would make every z-score of the list NaN, and the whole ranking arbitrary
        raise ValueError(f"the {side} score of {hits[bad][0]!r} is {scores[bad]}; fusion needs finite scores")
    mean = sum(scores) / len(scores)
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    if sd == 0.0:  # one candidate, or all tied: they carry no ranking signal of their own
        return {doc: 0.0 for doc, _ in hits}
    return {doc: (s - mean) / sd for doc, s in zip((d for d, _ in hits), scores)}


def fuse(dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]],
         dense_weight: float = DEFAULT_DENSE_WEIGHT, top_k: int | None = None) -> list[tuple[str, float]]:
    """One query's fused ranking from its (doc id, score) lists, best first; exact ties keep dense order."""
    return _fuse(dense, lexical, check_dense_weight(dense_weight), check_top_k(top_k))


def _fuse(dense, lexical, w: float, top_k: int | None) -> list[tuple[str, float]]:
    zd, zl = _zscores(dense, "dense"), _zscores(lexical, "lexical")
    floor_d = min(zd.values(), default=0.0) - MISSING_MARGIN
    floor_l = min(zl.values(), default=0.0) - MISSING_MARGIN
    order = list(zd) + [d for d in zl if d not in zd]
    fused = [(doc, w * zd.get(doc, floor_d) + (1.0 - w) * zl.get(doc, floor_l)) for doc in order]
    fused.sort(key=lambda x: -x[1])  # stable: exact ties stay in dense-then-lexical order
    return fused if top_k is None else fused[:top_k]


def fuse_many(dense: Sequence[Sequence[tuple[str, float]]], lexical: Sequence[Sequence[tuple[str, float]]],
              dense_weight: float = DEFAULT_DENSE_WEIGHT, top_k: int | None = None) -> list[list[tuple[str, float]]]:
    if len(dense) != len(lexical):
        raise ValueError(f"got {len(dense)} dense rankings but {len(lexical)} lexical ones; one each per query")
    w, top_k = check_dense_weight(dense_weight), check_top_k(top_k)  # once for the batch, not once per query
    return [_fuse(d, l, w, top_k) for d, l in zip(dense, lexical)]
