"""`o1-retriever eval --ray`: the corpus embedding step on Ray actors, everything else as without Ray."""
from __future__ import annotations

import numpy as np

from .encode import encode_texts
from .workers import ModelSpec


def ray_corpus_embeddings(embedder, ids: list[str], texts: list[str], batch_size: int = 32, use_cache: bool = True,
                          root=None, *, address: str | None = None, actors: int | None = None,
                          use_gpus: bool | None = None) -> tuple[np.ndarray, bool]:
    """What `evaluation.search.corpus_embeddings` returns, (doc vectors, came_from_cache), with the vectors computed
    by a pool of Ray actors that each load `embedder`'s model; the same on-disk cache (the same key), so a run with
    Ray and one without reuse each other's vectors."""
    from ..evaluation.search import corpus_embeddings

    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        spec = ModelSpec.of(embedder)
        spec = ModelSpec(spec.model, {**spec.options, "thought_cache": False})  # documents never think
        return encode_texts(spec, list(texts), batch_size=batch_size, actors=actors, address=address,
                            use_gpus=use_gpus, encoder_fingerprint=embedder.encoder_fingerprint)

    return corpus_embeddings(embedder, ids, texts, batch_size, use_cache, root, encode=encode)
