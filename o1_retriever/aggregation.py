"""How k thought vectors become one query vector."""
from __future__ import annotations

import numpy as np

from .validation import AGGREGATIONS, check_choice


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def aggregate(thought_vectors: np.ndarray, how: str = "mean", query_vectors: np.ndarray | None = None,
              query_weight: float | None = None) -> np.ndarray:
    """thought_vectors: (n, k, d) normalised. `mean` is the official rule (no re-normalisation);
    `normalized_mean` re-normalises it; `mean_with_query` also mixes in the bare-query vector (n, d),
    which hedges against a thought that drifts off topic. Its share is `query_weight` (None: an equal
    share, 1/(k+1)); a small model's thoughts help most as a minority vote beside the query.
    The weight arrives checked (`encode_queries` validates it before any thinking)."""
    check_choice(how, "aggregation", AGGREGATIONS)  # an unknown name would otherwise fall through to the mean
    if thought_vectors.ndim != 3 or thought_vectors.shape[1] == 0:  # the mean of no thoughts is NaN
        raise ValueError(f"thought_vectors must be (queries, k >= 1, dim), got shape {thought_vectors.shape}; "
                         "k=0 is the bare query's vector, with nothing to aggregate")
    if how == "mean_with_query":
        if query_vectors is None:
            raise ValueError("aggregation='mean_with_query' needs query_vectors, the bare queries' (n, dim) vectors")
        weight = 1.0 / (thought_vectors.shape[1] + 1) if query_weight is None else query_weight
        return _normalize(weight * query_vectors + (1.0 - weight) * thought_vectors.mean(axis=1))
    mean = thought_vectors.mean(axis=1)
    return _normalize(mean) if how == "normalized_mean" else mean
