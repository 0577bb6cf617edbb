"""`o1-retriever eval --ray`: the corpus embedding step on Ray actors, everything else as without Ray."""
from __future__ import annotations

import math
from contextlib import ExitStack

import numpy as np

from .encode import DEFAULT_SHARD_SIZE, encode_texts
from .runtime import check_actors, ray_session
from .workers import ModelSpec

CHUNKS = 8  # each chunk is one pool of actors that all load the model: few chunks, each a resume point


def ray_corpus_embeddings(embedder, ids: list[str], texts: list[str], batch_size: int = 32, use_cache: bool = True,
                          root=None, *, address: str | None = None, actors: int | None = None,
                          use_gpus: bool | None = None) -> tuple[np.ndarray, bool]:
    """What `evaluation.search.corpus_embeddings` returns, (doc vectors, came_from_cache), with the vectors computed
    by a pool of Ray actors that each load `embedder`'s model; the same on-disk cache (the same key), so a run with
    Ray and one without reuse each other's vectors. Ray is started (or joined) at the first miss only, once for
    every chunk, and shut down at the end if this call started it."""
    from ..evaluation.search import corpus_embeddings
    check_actors(actors)
    # Not the 64 texts of a run without Ray: every chunk starts actors that load the model again.
    chunk_size = max(DEFAULT_SHARD_SIZE, math.ceil(len(texts) / CHUNKS))
    chunked = len(texts) > chunk_size  # then corpus_embeddings draws the one bar across chunks
    joined = False

    with ExitStack() as stack:
        def encode(texts: list[str], batch_size: int) -> np.ndarray:
            nonlocal joined
            if not joined:
                stack.enter_context(ray_session(address))
                joined = True
            spec = ModelSpec.of(embedder)
            spec = ModelSpec(spec.model, {**spec.options, "thought_cache": False})  # documents never think
            return encode_texts(spec, list(texts), batch_size=batch_size, actors=actors, address=address,
                                use_gpus=use_gpus, encoder_fingerprint=embedder.encoder_fingerprint,
                                show_progress_bar=False if chunked else None)

        return corpus_embeddings(embedder, ids, texts, batch_size, use_cache, root, encode=encode,
                                 chunk_size=chunk_size)
