"""One merged batch through the engine, on its one thread: the embedder call its kind asks for, the batch's metrics,
and its `Result` (vectors, thoughts, tokens read). `batching.Batcher` gathers the batch and shares the result out."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .window import token_counts


@dataclass
class Result:
    """One request's share of a batch: vectors (query/document), thoughts (query/think), tokens read."""
    embeddings: np.ndarray | None
    thoughts: list | None
    tokens: list[int]

    @staticmethod
    def join(parts: list["Result"]) -> "Result":
        """One result from the results of consecutive slices of a request's texts."""
        if len(parts) == 1:  # most requests fit one slice: no copy
            return parts[0]
        first = parts[0]
        return Result(None if first.embeddings is None else np.concatenate([p.embeddings for p in parts]),
                      None if first.thoughts is None else [t for p in parts for t in p.thoughts],
                      [n for p in parts for n in p.tokens])


def compute(emb, metrics, max_batch: int, kind: str, k: int, texts: list[str], read: list[str]) -> Result:
    """`texts` through `emb` as `kind` asks; `read` (the texts cut to the model's window) for `usage`.
    batch_size=max_batch: a merged batch is one forward, not several."""
    started = time.perf_counter()
    if metrics is not None:
        metrics.batch_size.labels(kind).observe(len(texts))
        if kind != "document" and k > 0 and emb.thought_cache is not None:
            hits = round(emb.cached_fraction(texts, k) * len(texts))
            metrics.cache(hits, len(texts))
    embeddings = thoughts = None
    if kind == "document":
        embeddings = emb.encode_documents(texts, batch_size=max_batch, show_progress_bar=False)
    elif kind == "query":
        out = emb.encode_queries(texts, k=k, batch_size=max_batch, show_progress_bar=False, return_thoughts=True)
        embeddings, thoughts = out.embeddings, out.thoughts
    else:
        thoughts = emb.think(texts, k=k, batch_size=max_batch, show_progress_bar=False)
    if metrics is not None:
        metrics.engine_seconds.labels(kind).observe(time.perf_counter() - started)
    return Result(embeddings, thoughts, token_counts(emb, read, kind))
