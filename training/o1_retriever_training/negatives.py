"""Hard-negative mining: top-ranked passages from BM25 and/or dense members that are not positives.

Several miners are interleaved rank by rank (BM25 #1, dense #1, BM25 #2, ...), de-duplicated, so
each contributes its hardest passages.
"""
from __future__ import annotations

from .members import BM25Member, DenseMember


def mine_negatives(queries: list[str], positives: list[set[str]], corpus_ids: list[str], corpus: list[str],
                   miners: list, num_negatives: int = 15, depth: int | None = None) -> list[list[str]]:
    """Per query, up to `num_negatives` corpus ids ranked high by the miners, never a positive."""
    if len(queries) != len(positives):
        raise ValueError(f"got {len(queries)} queries but {len(positives)} positive sets")
    if num_negatives < 0:
        raise ValueError(f"num_negatives={num_negatives} must be >= 0")
    if not queries or num_negatives == 0 or not miners:
        return [[] for _ in queries]
    depth = depth or num_negatives + max(map(len, positives)) + 5
    rankings = []
    for miner in miners:
        if isinstance(miner, BM25Member):
            if miner.corpus != corpus:
                raise ValueError("the BM25 miner must index the same corpus it mines from")
            rankings.append(miner.search(queries, depth))
        elif isinstance(miner, DenseMember):
            rankings.append(miner.search(queries, depth, corpus))
        else:
            raise TypeError(f"a miner must be a BM25Member or DenseMember, got {type(miner).__name__}")
    out = []
    for qi, pos in enumerate(positives):
        chosen, seen = [], set(pos)
        for rank in range(depth):
            for ranking in rankings:
                row = ranking[qi]
                if rank < len(row) and corpus_ids[row[rank]] not in seen:
                    seen.add(corpus_ids[row[rank]])
                    chosen.append(corpus_ids[row[rank]])
            if len(chosen) >= num_negatives:
                break
        out.append(chosen[:num_negatives])
    return out
