"""Dense retrieval for evaluation: corpus vectors cached on disk, exact top-k by matrix product.

The corpus is embedded once per (encoder weights, exact texts, max length): a k sweep, a rerun,
and the composite model with the same encoder all reuse one file.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..batching import show_progress
from ..default_model import cache_dir
from ..device import compute_dtype_name
from ..encoding import EnsembleEncoder, LMEncoder
from ..loading import fingerprint
from .data import corpus_digest


def encoder_identity(embedder) -> str:
    """What determines a document vector: the encoder's weights, the dtype it computes in, its tokenizer and its
    max length."""
    enc = embedder.encoder
    if isinstance(enc, LMEncoder):
        # The number counts the ids a document is read from, <emb> included (window + 1), so caches keyed when the
        # window counted <emb> inside it stay valid. "pos": positions counted over real tokens, which retired the
        # vectors cached before.
        return f"lm:{embedder.encoder_fingerprint}:{embedder.document_max_length + 1}:pos{_dtype_tag(enc.model)}"
    if isinstance(enc, EnsembleEncoder):
        return "ensemble:" + "+".join(_sentence_transformer_identity(m.model) for m in enc.members)
    return _sentence_transformer_identity(enc.model)


def _sentence_transformer_identity(st) -> str:
    """Its own weights are hashed: a name alone is not enough."""
    return f"st:{fingerprint(st, st.tokenizer)}:{getattr(st, 'max_seq_length', None)}{_dtype_tag(st)}"


def _dtype_tag(model) -> str:
    """":bf16" for a model computing in bf16 (and so on), nothing for fp32. Weights stored in bf16 hash the same
    loaded in either dtype, so without it an fp32 run reused a bf16 run's vectors. fp32 adds nothing: vectors
    cached before the dtype entered the key were computed in fp32 wherever `auto` picks it."""
    name = compute_dtype_name(model)
    return "" if name == "fp32" else ":" + name


def corpus_cache_path(embedder, ids: list[str], texts: list[str], root: Path | None = None) -> Path:
    key = hashlib.sha256(f"{encoder_identity(embedder)}|{corpus_digest(ids, texts)}".encode()).hexdigest()[:24]
    return (root or cache_dir() / "embeddings") / f"{key}.npy"  # atomic_path makes the folder on the first write


def _load(path: Path, shape: tuple) -> np.ndarray | None:
    """The vectors saved at `path`; None when the file is missing, torn or of another shape (then: recompute)."""
    try:
        vectors = np.load(path)
    except (OSError, ValueError, EOFError):
        return None
    return vectors if vectors.shape == shape else None


def corpus_embeddings(embedder, ids: list[str], texts: list[str], batch_size: int = 32,
                      use_cache: bool = True, root: Path | None = None, encode=None,
                      chunk_size: int = 64, desc: str = "Embedding corpus",
                      show_progress_bar: bool | None = None) -> tuple[np.ndarray, bool]:
    """(doc vectors, came_from_cache). `encode(texts, batch_size)` computes the vectors on a miss (default:
    `embedder.encode_documents`; `eval --ray` passes Ray actors'), so both ways share one cache. A miss is embedded
    `chunk_size` documents at a time, each chunk saved atomically as it finishes: a killed run resumes at its last
    finished chunk. An ensemble's vectors are its members', each from that encoder's own cache. `show_progress_bar`:
    None draws a bar for long corpora, False none (a log file: `eval` off a terminal)."""
    if encode is None and isinstance(embedder.encoder, EnsembleEncoder):
        members = embedder.encoder.members
        found = [corpus_embeddings(_Member(m), ids, texts, batch_size, use_cache, root, None, chunk_size,
                                   desc=f"{desc} (encoder {i} of {len(members)})", show_progress_bar=show_progress_bar)
                 for i, m in enumerate(members, 1)]
        vectors = np.concatenate([v for v, _ in found], axis=1) / np.sqrt(len(found))
        return vectors.astype(np.float32), all(hit for _, hit in found)
    path = corpus_cache_path(embedder, ids, texts, root)
    if use_cache and (vectors := _load(path, (len(ids), embedder.dim))) is not None:
        return vectors, True

    def run(part: list[str], progress: bool | None) -> np.ndarray:
        if encode is not None:
            vectors = encode(part, batch_size)
        else:
            vectors = embedder.encode_documents(part, batch_size=batch_size, show_progress_bar=progress)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    if not use_cache:
        return run(texts, show_progress_bar), False
    parts = path.with_suffix(".parts")
    chunked = len(texts) > chunk_size  # one overall bar across chunks; a single chunk shows its own
    bar = tqdm(total=len(texts), desc=desc, unit="doc", disable=not chunked or show_progress_bar is False)
    chunks = []
    for start in range(0, len(texts), chunk_size):
        part = texts[start:start + chunk_size]
        chunk_file = parts / f"{start:09d}.npy"
        chunk = _load(chunk_file, (len(part), embedder.dim))
        if chunk is None:
            chunk = run(part, False if chunked else show_progress_bar)
            with atomic_path(chunk_file) as tmp, open(tmp, "wb") as f:
                np.save(f, chunk)
        chunks.append(chunk)
        bar.update(len(part))
    bar.close()
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), dtype=np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, vectors)
    shutil.rmtree(parts, ignore_errors=True)  # a concurrent run of the same corpus may have removed it first
    return vectors, False


class _Member:
    """One encoder of an ensemble, seen as an embedder of documents: its cache key is that encoder's alone."""

    def __init__(self, encoder):
        self.encoder, self.dim = encoder, encoder.dim

    def encode_documents(self, texts: list[str], batch_size: int = 32, show_progress_bar: bool | None = None):
        return self.encoder.encode(texts, None, batch_size, show_progress(show_progress_bar, len(texts)),
                                   role="document")


SCORE_BLOCK_BYTES = 256 << 20  # the most memory one block of query-by-document scores takes


def exact_search(query_vectors: np.ndarray, doc_vectors: np.ndarray, doc_ids: list[str],
                 top_k: int = 100) -> list[list[tuple[str, float]]]:
    """Top-k documents per query by inner product (cosine: both sides are L2-normalised)."""
    if query_vectors.ndim != 2 or doc_vectors.ndim != 2 or query_vectors.shape[1] != doc_vectors.shape[1]:
        raise ValueError(f"query vectors {query_vectors.shape} and document vectors {doc_vectors.shape} "
                         "must be 2-D with the same width")
    if len(doc_ids) != len(doc_vectors):  # ids would be paired with the wrong vectors, or run out
        raise ValueError(f"{len(doc_ids)} doc ids for {len(doc_vectors)} document vectors: one id per vector")
    top_k = min(top_k, len(doc_ids))
    if top_k <= 0:
        return [[] for _ in range(len(query_vectors))]
    # Queries scored a block at a time, the block's scores within SCORE_BLOCK_BYTES whatever the corpus size: 1,024
    # queries against a 5M-document corpus would be 20 GB of scores at once.
    itemsize = np.result_type(query_vectors, doc_vectors).itemsize
    rows = max(1, min(1024, SCORE_BLOCK_BYTES // (itemsize * len(doc_ids))))
    results = []
    for start in range(0, len(query_vectors), rows):
        scores = query_vectors[start:start + rows] @ doc_vectors.T
        part = np.argpartition(scores, len(doc_ids) - top_k, axis=1)[:, -top_k:]  # no negated copy of the block
        for row, cand in zip(scores, part):
            best = cand[np.argsort(-row[cand], kind="stable")]
            results.append([(doc_ids[i], float(row[i])) for i in best])
    return results
