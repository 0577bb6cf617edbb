"""How k thought vectors become one query vector."""
from __future__ import annotations

import numpy as np


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def aggregate(thought_vectors: np.ndarray, how: str = "mean", query_vectors: np.ndarray | None = None,
              query_weight: float | None = None) -> np.ndarray:
    """thought_vectors: (n, k, d) normalised. `mean` is the official rule (no re-normalisation);
    `normalized_mean` re-normalises it; `mean_with_query` also mixes in the bare-query vector (n, d),
    which hedges against a thought that drifts off topic. Its share is `query_weight` (None: an equal
    share, 1/(k+1)); a small model's thoughts help most as a minority vote beside the query.
    Arguments arrive checked (`encode_queries` validates them before any thinking)."""
    if how == "mean_with_query":
        weight = 1.0 / (thought_vectors.shape[1] + 1) if query_weight is None else query_weight
        return _normalize(weight * query_vectors + (1.0 - weight) * thought_vectors.mean(axis=1))
    mean = thought_vectors.mean(axis=1)
    return _normalize(mean) if how == "normalized_mean" else mean
