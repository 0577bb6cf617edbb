"""`O1Embedder`: think, embed, aggregate. The public entry point of the engine."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .aggregation import aggregate
from .batching import show_progress
from .cache import open_cache
from .cached_thinking import CachedThinking
from .construction import Construction
from .default_model import DEFAULT_NAME, cache_dir
from .encoding import LMEncoder
from .formatting import query_embedding_text
from .loading import fingerprint
from .model_source import ModelSource
from .remote_thinking import RemoteThinker
from .settings import InferenceSettings, check_names
from .st_surface import QUERY_OPTIONS, SentenceTransformerSurface
from .thinking import Thinker
from .validation import (AGGREGATIONS, as_text_list, check_choice, check_k, check_positive_int, check_query_weight,
                         plain_int)
from .vector_cache import QueryVectorCache

__all__ = ["O1Embedder", "QueryEncoding", "QUERY_OPTIONS"]  # QUERY_OPTIONS lives in st_surface.py


@dataclass
class QueryEncoding:
    """Query vectors plus the thoughts behind them (1-D / flat list when a single str came in)."""
    embeddings: np.ndarray
    thoughts: list


class O1Embedder(Construction, CachedThinking, SentenceTransformerSurface):
    """A retriever that thinks before it embeds. Build with `from_pretrained()` or `composite()`."""

    def __init__(self, thinker: Thinker | None, encoder, *, name: str, settings: InferenceSettings | None = None,
                 thought_cache: bool | str | Path = True, quantization=None, fused: bool = True,
                 source: ModelSource | None = None, vector_cache: bool = True, compile: bool = False, **overrides):
        """name: the model's name in records and messages. settings: how it thinks and embeds (default: the official
        values); keyword `overrides` replace single settings of it (e.g. `aggregation="mean_with_query"`).
        source: how to build it again elsewhere (default: `from_pretrained(name)`).
        vector_cache: keep finished query vectors in memory, so a repeated query costs no forward (`vector_cache.py`).
        Settings and what is set on the models in place (`encoder.model.max_seq_length`, `.to(dtype)`,
        `truncate_dim`, a default prompt) key its entries; weights changed in place (fine-tuning this very instance)
        do not: call `emb.vector_cache.clear()` after such a change.
        compile: think with a static KV cache and a compiled forward (same thoughts; worth its one-time compile in
        long-lived processes such as the server). A model whose thinker also embeds (fused) decodes uncompiled."""
        settings = settings or InferenceSettings()
        if overrides:
            settings = dataclasses.replace(settings, **check_names(overrides, "O1Embedder"))
        # A sentence-transformers encoder may read the thought alone (HyDE-like); the O1 format always holds the query.
        if settings.thought_input != "query_and_thought" and isinstance(encoder, LMEncoder):
            raise ValueError(f"thought_input={settings.thought_input!r} needs a sentence-transformers encoder; an O1 "
                             "model embeds `<query>q</query><thought>t` (use 'query_and_thought')")
        self.settings = settings
        self.thinker, self.encoder, self.name = thinker, encoder, name
        if source is None:
            kind = "encoder" if thinker is None else "joint" if isinstance(encoder, LMEncoder) else "composite"
            source = ModelSource(kind, None if name == DEFAULT_NAME else name)
        self.source = source
        self.quantization, self.fused = quantization, fused
        parts = [fingerprint(encoder.model, encoder.tokenizer) if isinstance(encoder, LMEncoder)
                 else encoder.fingerprint]
        if thinker is not None:  # one instance thinking and embedding is hashed once
            same = isinstance(encoder, LMEncoder) and thinker.model is encoder.model
            parts.append(parts[0] if same else thinker.fingerprint if isinstance(thinker, RemoteThinker)  # no weights here
                         else fingerprint(thinker.model, thinker.tokenizer, extra=f"{quantization}"))
        self.encoder_fingerprint = parts[0]
        self.thinker_fingerprint = parts[-1]
        self.fingerprint = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
        self.vector_cache = QueryVectorCache() if vector_cache else None
        if thinker is not None:
            thinker.compiled = bool(compile)
        self.thought_cache = open_cache(thought_cache, cache_dir)  # True: thoughts.sqlite in the cache dir

    # ---- embedding (thinking, with the thought cache: cached_thinking.py) -------------------------
    def _query_texts(self, queries: list[str], thoughts: list[str]) -> list[str]:
        if isinstance(self.encoder, LMEncoder):
            eos = self.encoder.tokenizer.eos_token
            return [query_embedding_text(q, t, eos) for q, t in zip(queries, thoughts)]
        if self.thought_input == "thought":  # an empty thought falls back to the query
            return [t.strip() or q for q, t in zip(queries, thoughts)]
        return [f"{q} {t}".strip() for q, t in zip(queries, thoughts)]

    def encode_queries(self, queries, k: int = 3, batch_size: int = 32, show_progress_bar: bool | None = None,
                       return_thoughts: bool = False, aggregation: str | None = None,
                       query_weight: float | None = None):
        """Think k times per query, embed each `query + thought`, aggregate. k=0: bare query.
        `aggregation`/`query_weight` override the embedder's own for this call."""
        queries, single = as_text_list(queries, "queries")
        k = check_k(plain_int(k))  # np.int64 as a plain int: it keys caches, whose JSON has no numpy types
        batch_size = check_positive_int(plain_int(batch_size), "batch_size")
        how = check_choice(self.aggregation if aggregation is None else aggregation, "aggregation", AGGREGATIONS)
        if query_weight is None and how == self.aggregation:
            query_weight = self.query_weight
        query_weight = check_query_weight(query_weight, how)
        progress = show_progress(show_progress_bar, len(queries))
        scope = self._vector_scope(k, how, query_weight) if queries else None
        if scope is None:
            vectors, thoughts = self._encode_queries(queries, k, batch_size, progress, how, query_weight)
            thoughts = [list(t) for t in thoughts]  # a repeated query's list is its own, as from the vector cache
        else:  # a repeated query is a lookup: no thinking, no embedding
            done = self.vector_cache.get_many(scope, queries)
            todo = [q for q in dict.fromkeys(queries) if q not in done]
            if todo:
                made_vectors, made_thoughts = self._encode_queries(todo, k, batch_size, progress, how, query_weight)
                made = {q: (made_vectors[i], made_thoughts[i]) for i, q in enumerate(todo)}
                # What the thinker keeps out of the thought cache (a remote server's empty or identical thoughts) is
                # kept out of this one too, so a server mended since is asked again.
                keep = getattr(self.thinker, "cacheable", None) if k > 0 else None
                self.vector_cache.put_many(scope, {q: v for q, v in made.items()
                                                   if keep is None or keep(v[1], k, self.settings)})
                done |= made
            vectors = np.stack([done[q][0] for q in queries])
            thoughts = [list(done[q][1]) for q in queries]
        if single:
            vectors, thoughts = vectors[0], thoughts[0]
        return QueryEncoding(vectors, thoughts) if return_thoughts else vectors

    def _vector_scope(self, k: int, how: str, query_weight) -> str | None:
        """The vector cache's scope for this call, or None where a repeat must not be served from it: no cache, or
        thoughts sampled afresh on every call (no seed and no thought cache to pin them)."""
        if self.vector_cache is None or (k > 0 and self.settings.seed is None and self.thought_cache is None):
            return None
        style = self.thinker.prompt_style if self.thinker is not None else None
        # The fingerprint is taken once, at construction: what a caller may change in place afterwards (a window, a
        # dtype, truncate_dim, a default prompt, a sampling rule) is read afresh, so a vector made before the change is
        # not served. The thinker's part is what keys its thoughts (cached_thinking.py).
        live = [self.encoder.live_state, None if self.thinker is None else self._key_params()[0]]
        return self.vector_cache.scope(f"{self.fingerprint}:{style}:{self.can_fuse}:{live}",
                                       dataclasses.asdict(self.settings), k, how, query_weight)

    def _encode_queries(self, queries, k, batch_size, progress, how, query_weight) -> tuple[np.ndarray, list]:
        thoughts, fused = self._think(queries, k, batch_size, progress, want_vectors=self.can_fuse)
        bare = None
        if k == 0 or how == "mean_with_query":
            bare = self.encoder.encode(self._query_texts(queries, [""] * len(queries)), self.query_max_length,
                                       batch_size, progress)
        if k == 0:
            vectors = bare
        else:
            need = [i for i, q in enumerate(queries) if q not in fused]
            per_query = np.zeros((len(queries), k, self.encoder.dim), dtype=np.float32)
            if need:
                flat_q = [queries[i] for i in need for _ in range(k)]
                flat_t = [t for i in need for t in thoughts[i]]
                enc = self.encoder.encode(self._query_texts(flat_q, flat_t), self.query_max_length, batch_size, progress)
                per_query[need] = enc.reshape(len(need), k, -1)
            for i, q in enumerate(queries):
                if q in fused:
                    per_query[i] = fused[q]
            vectors = aggregate(per_query, how, bare, query_weight)
        return vectors.astype(np.float32), thoughts

    def encode_documents(self, documents, batch_size: int = 32, show_progress_bar: bool | None = None) -> np.ndarray:
        """Embed passages directly (`passage<emb>`), no thinking; L2-normalised."""
        documents, single = as_text_list(documents, "documents")
        batch_size = check_positive_int(plain_int(batch_size), "batch_size")
        vectors = self.encoder.encode(documents, self.document_max_length, batch_size,
                                      show_progress(show_progress_bar, len(documents)), role="document")
        return vectors[0] if single else vectors

    def inference_settings(self) -> dict:
        """The settings that apply to this model's encoder: what eval JSONs record and a Chroma config rebuilds from."""
        return self.settings.recorded("lm" if isinstance(self.encoder, LMEncoder) else "sentence-transformers")

    # the settings most callers read, as attributes
    aggregation = property(lambda self: self.settings.aggregation)
    query_weight = property(lambda self: self.settings.query_weight)
    thought_input = property(lambda self: self.settings.thought_input)
    query_max_length = property(lambda self: self.settings.query_max_length)
    document_max_length = property(lambda self: self.settings.document_max_length)

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def device(self):
        """The device the encoder runs on, as `SentenceTransformer.device`: where `convert_to_tensor` puts vectors."""
        return next(self.encoder.model.parameters()).device

    @property
    def backend(self) -> str:
        """What runs the encoder: "transformers" (a causal LM) or "sentence-transformers"."""
        return "transformers" if isinstance(self.encoder, LMEncoder) else "sentence-transformers"

    def __repr__(self) -> str:
        style = self.thinker.prompt_style if self.thinker else None
        return (f"O1Embedder(name={self.name!r}, dim={self.dim}, prompt_style={style!r}, "
                f"quantization={self.quantization!r}, backend={self.backend!r})")
