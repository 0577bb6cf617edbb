"""How k thought vectors become one query vector."""
from __future__ import annotations

import numpy as np

from .validation import AGGREGATIONS, check_choice


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def aggregate(thought_vectors: np.ndarray, how: str = "mean", query_vectors: np.ndarray | None = None) -> np.ndarray:
    """thought_vectors: (n, k, d) normalised. `mean` is the official rule (no re-normalisation);
    `normalized_mean` re-normalises it; `mean_with_query` also averages in the bare-query vector
    (n, d), which hedges against a thought that drifts off topic."""
    check_choice(how, "aggregation", AGGREGATIONS)
    if how == "mean_with_query":
        if query_vectors is None:
            raise ValueError("aggregation='mean_with_query' needs the bare-query vectors")
        thought_vectors = np.concatenate([thought_vectors, query_vectors[:, None, :]], axis=1)
    mean = thought_vectors.mean(axis=1)
    return _normalize(mean) if how in ("normalized_mean", "mean_with_query") else mean
