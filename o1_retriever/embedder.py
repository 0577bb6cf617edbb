"""`O1Embedder`: think, embed, aggregate. The public entry point of the engine."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .aggregation import aggregate
from .batching import show_progress
from .cache import cache_key, open_cache
from .checkpoint import is_adapter
from .composite import read_composite
from .default_model import (DEFAULT_NAME, MINILM_HUB_ID, SMOLLM2_HUB_ID, bundled_model_path, cache_dir, minilm_path,
                            smollm2_base_dir)
from .device import DTYPE_NAMES, resolve_device, resolve_dtype, weights_dtype_name
from .encoding import LMEncoder, SentenceEncoder, load_encoder
from .formatting import query_embedding_text
from .loading import fingerprint, load_causal_lm
from .merging import merged_adapter_dir
from .model_source import ModelSource
from .quiet import quietly
from .remote_thinking import RemoteThinker
from .sampling import SAMPLER
from .settings import ADDED_LATER, InferenceSettings, check_names, check_overrides, read_model_settings, resolve
from .thinking import Thinker
from .validation import (AGGREGATIONS, QUANTIZATIONS, as_text_list, check_choice, check_k, check_positive_int,
                         check_query_weight)
from .vector_cache import QueryVectorCache


@dataclass
class QueryEncoding:
    """Query vectors plus the thoughts behind them (1-D / flat list when a single str came in)."""
    embeddings: np.ndarray
    thoughts: list


class O1Embedder:
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

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    @quietly
    def from_pretrained(cls, path_or_id=None, *, device=None, dtype="auto", quantization=None,
                        share_weights: bool = False, prompt_style: str = "auto", thought_cache: bool | str | Path = True,
                        fused: bool = True, vector_cache: bool = True, compile: bool = False,
                        encoder_dtype=None, **settings) -> "O1Embedder":
        """Load a model: None (the bundled default, offline), a bundled name ("o1-retriever-default", or
        "o1-retriever-joint": the earlier default, one SmolLM2 thinking and embedding), a composite model
        directory (`o1_composite.json`: a thinker plus a sentence-transformers encoder), an official O1
        checkpoint, any causal LM directory or hub id, or a `.gguf` file.

        quantization: "4bit" (NF4) / "8bit" loads the *thinker* with bitsandbytes while the encoder
        stays in `dtype`; `share_weights=True` uses the quantized instance for both (least memory).
        encoder_dtype: a composite's sentence-transformers encoders only (default: `dtype`), e.g. "fp32" beside a
        bf16 thinker.
        prompt_style: "official" (`<query>…<thought>`), "chat" (instruction via the chat template, for
        models never trained on the O1 tokens), or "auto" (official iff the checkpoint has the tokens).
        settings: any `InferenceSettings` field (temperature, top_p, max_new_tokens, seed, aggregation,
        query_weight, thought_input, token windows); each defaults to the model's own (its o1_generation.json or
        o1_composite.json), else to the official value.
        """
        _refuse_backend(settings)
        overrides = check_overrides(settings, "from_pretrained")  # before minutes of loading
        check_choice(quantization, "quantization", QUANTIZATIONS)
        check_choice(prompt_style, "prompt_style", ("auto", "official", "chat"))
        if path_or_id is not None and not isinstance(path_or_id, (str, os.PathLike)):
            raise TypeError(f"model path must be a str or PathLike (or None), got {type(path_or_id).__name__}")
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        bundled = bundled_model_path(path_or_id)
        name = DEFAULT_NAME if path_or_id is None else str(path_or_id)
        source = bundled if bundled is not None else path_or_id
        spec = read_composite(source) if source is not None else None
        origin = None if name == DEFAULT_NAME else name  # what from_pretrained is given to load it again
        kept = dict(quantization=quantization, thought_cache=thought_cache, fused=fused, vector_cache=vector_cache,
                    compile=compile,
                    source=ModelSource("joint" if spec is None else "composite", origin))
        if spec is not None:
            edt = dt if encoder_dtype is None else resolve_dtype(encoder_dtype, dev)
            return cls._from_composite(spec, name, dev, dt, edt, prompt_style, resolve(spec.settings, overrides),
                                       kept)
        if encoder_dtype is not None:
            raise ValueError(f"encoder_dtype={encoder_dtype!r} applies to a composite model's sentence-transformers "
                             f"encoders; {name!r} embeds with its language model: use dtype")
        if bundled is not None and is_adapter(bundled):
            source = merged_adapter_dir(bundled, dt)  # the shipped adapter: merge once, then load fast
        source = str(source)
        if quantization is None or share_weights:
            thinker_lm = encoder_lm = load_causal_lm(source, device=dev, dtype=dt, quantization=quantization)
        else:
            encoder_lm = load_causal_lm(source, device=dev, dtype=dt)
            thinker_lm = load_causal_lm(source, device=dev, dtype=dt, quantization=quantization)
        style = thinker_lm.prompt_style if prompt_style == "auto" else prompt_style
        thinker = Thinker(thinker_lm.model, thinker_lm.tokenizer, style)
        encoder = LMEncoder(encoder_lm.model, encoder_lm.tokenizer)
        settings = resolve(read_model_settings(bundled or path_or_id), overrides)
        return cls(thinker, encoder, name=name, settings=settings, **kept)

    @classmethod
    def _from_composite(cls, spec, name, dev, dt, edt, prompt_style, settings, kept) -> "O1Embedder":
        """A composite model directory: its thinker (quantizable) in `dt` plus its sentence-transformers encoder in
        `edt` (never 4-bit: it does not decode, so quantizing it would only cost accuracy)."""
        thinker_source, quantization = spec.thinker, kept["quantization"]
        if quantization is None and is_adapter(thinker_source):
            thinker_source = str(merged_adapter_dir(thinker_source, dt))
        lm = load_causal_lm(thinker_source, device=dev, dtype=dt, quantization=quantization)
        style = lm.prompt_style if prompt_style == "auto" else prompt_style
        encoder = load_encoder(spec.encoder, dev, edt)
        return cls(Thinker(lm.model, lm.tokenizer, style), encoder, name=name, settings=settings, **kept)

    @classmethod
    @quietly
    def composite(cls, thinker=None, encoder=None, *, device=None, dtype="auto", quantization=None,
                  **options) -> "O1Embedder":
        """Any causal LM thinks (chat-prompted), any sentence-transformers model embeds
        `query + " " + thought`: the paper's "separate generator + retriever" baseline (HyDE-like).
        Defaults: SmolLM2-135M-Instruct thinks, all-MiniLM-L6-v2 embeds (both offline packages).
        An encoder given by path or hub id loads in `dtype`; a SentenceTransformer you pass is used as it is.
        thinker may also be a thinker behind an API (`remote_thinking.OpenAIThinker`, `LangChainThinker`,
        `LlamaIndexThinker`): it is used as is, and only the encoder loads here."""
        check_choice(quantization, "quantization", QUANTIZATIONS)
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        if isinstance(thinker, RemoteThinker):
            if quantization is not None:
                raise ValueError(f"quantization={quantization!r} applies to an in-process thinker; {thinker!r} runs "
                                 "behind an API (quantize it on its server)")
            think, thinker = thinker, thinker.fingerprint
        else:
            lm = load_causal_lm(str(smollm2_base_dir()) if thinker is None else thinker,
                                device=dev, dtype=dt, quantization=quantization)
            think = Thinker(lm.model, lm.tokenizer, "chat")
        enc = SentenceEncoder.load(str(minilm_path()) if encoder is None else encoder, dev, dt)
        name = f"composite:{thinker or 'SmolLM2-135M-Instruct'}+{encoder or 'all-MiniLM-L6-v2'}"
        source = ModelSource("composite", thinker=str(thinker or SMOLLM2_HUB_ID), encoder=str(encoder or MINILM_HUB_ID))
        return cls(think, enc, name=name, quantization=quantization, source=source, **options)

    # ---- thinking -----------------------------------------------------------------------------
    @property
    def can_fuse(self) -> bool:
        t = self.thinker
        return (self.fused and t is not None and isinstance(self.encoder, LMEncoder)
                and t.model is self.encoder.model and self.quantization is None and t.prompt_style == "official")

    def _key_params(self) -> list[dict]:
        """The generation parameters thoughts are cached under, the current form first (a thinker behind an API
        that may drop refused sampling parameters gives the forms it may have kept them under)."""
        params = self.settings.generation() | {"quantization": self.quantization, "sampler": SAMPLER}
        precision = _compute_dtype(self.thinker.model)
        if precision is not None:  # the same weights computing in bf16 and fp32 sample different thoughts
            params["dtype"] = precision
        if self.thinker.prompt_style == "official":  # kept as generated, not stripped: not the stripped texts' key
            params["decoded"] = "as generated"
        forms = getattr(self.thinker, "cache_params", None)
        return [params] if forms is None else forms(params)

    def _keys(self, queries: list[str], k: int, params: dict | None = None) -> list[str]:
        params = self._key_params()[0] if params is None else params
        template = f"{self.thinker.prompt_style}:{self.thinker.prompt('{query}')}"
        return [cache_key(self.thinker_fingerprint, template, q, k, params) for q in queries]

    def _cached(self, queries: list[str], k: int) -> dict[str, list[str]]:
        """The thoughts the cache holds for `queries`, by query (each form of the key in turn)."""
        found: dict[str, list[str]] = {}
        for params in self._key_params() if self.thought_cache is not None else ():
            rest = [q for q in dict.fromkeys(queries) if q not in found]
            keys = self._keys(rest, k, params)
            hits = self.thought_cache.get_many(keys, k) if rest else {}
            found |= {q: hits[key] for q, key in zip(rest, keys) if key in hits}
        return found

    def cached_fraction(self, queries, k: int = 3) -> float:
        """Share of `queries` whose k thoughts the thought cache already holds (0.0 without a cache)."""
        queries, _ = as_text_list(queries, "queries")
        check_k(k)
        if self.thinker is None or k == 0 or self.thought_cache is None or not queries:
            return 0.0
        found = self._cached(queries, k)
        return sum(q in found for q in queries) / len(queries)

    def think(self, queries, k: int = 3, batch_size: int = 32, show_progress_bar: bool | None = None) -> list:
        """k thoughts per query (list of lists; a flat list for a single str)."""
        queries, single = as_text_list(queries, "queries")
        check_k(k)
        check_positive_int(batch_size, "batch_size")
        thoughts = self._think(queries, k, batch_size, show_progress(show_progress_bar, len(queries)))[0]
        return thoughts[0] if single else thoughts

    def _think(self, queries, k, batch_size, progress, want_vectors=False):
        """Thoughts for every query (cache first); with want_vectors, fused vectors for the misses."""
        if k == 0 or self.thinker is None:
            return [[] for _ in queries], {}
        hits = self._cached(queries, k)
        # Similar lengths together (less padding); ties break on the text, never on set (string-hash) order.
        # Each query samples from its own seed, so its thoughts do not depend on the batch it lands in.
        todo = sorted(dict.fromkeys(q for q in queries if q not in hits), key=lambda q: (len(q), q))
        fresh, vectors = {}, {}
        if todo:
            if want_vectors:
                made, parts = self.thinker.think(todo, k, self.settings, batch_size, progress,
                                                 read=self.encoder.encode_generated)
                vecs = torch.nn.functional.normalize(torch.cat([p[0] for p in parts]), dim=-1).cpu().numpy()
                used = [ids for p in parts for ids in p[1]]
                # Keep a fused vector only if re-encoding the decoded text would read the very same ids.
                texts = self._query_texts([q for q in todo for _ in range(k)], [t for ts in made for t in ts])
                same = [a == b for a, b in zip(self.encoder.tokenize(texts, self.query_max_length), used)]
                vectors = {q: vecs[i * k:(i + 1) * k] for i, q in enumerate(todo) if all(same[i * k:(i + 1) * k])}
            else:
                made = self.thinker.think(todo, k, self.settings, batch_size, progress)
            fresh = dict(zip(todo, made))
            if self.thought_cache is not None:  # a remote thinker may say some thoughts are not worth keeping
                keep = getattr(self.thinker, "cacheable", lambda *_: True)
                # keyed as made: a server's refusal of a sampling parameter, learned while thinking, changes the key
                self.thought_cache.put_many({key: fresh[q] for q, key in zip(todo, self._keys(todo, k))
                                             if keep(fresh[q], k, self.settings)})
        return [hits[q] if q in hits else fresh[q] for q in queries], vectors

    # ---- embedding ----------------------------------------------------------------------------
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
        check_k(k)
        check_positive_int(batch_size, "batch_size")
        how = check_choice(aggregation or self.aggregation, "aggregation", AGGREGATIONS)
        if query_weight is None and how == self.aggregation:
            query_weight = self.query_weight
        query_weight = check_query_weight(query_weight, how)
        progress = show_progress(show_progress_bar, len(queries))
        scope = self._vector_scope(k, how, query_weight) if queries else None
        if scope is None:
            vectors, thoughts = self._encode_queries(queries, k, batch_size, progress, how, query_weight)
        else:  # a repeated query is a lookup: no thinking, no embedding
            done = self.vector_cache.get_many(scope, queries)
            todo = [q for q in dict.fromkeys(queries) if q not in done]
            if todo:
                made_vectors, made_thoughts = self._encode_queries(todo, k, batch_size, progress, how, query_weight)
                made = {q: (made_vectors[i], made_thoughts[i]) for i, q in enumerate(todo)}
                self.vector_cache.put_many(scope, made)
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
        # dtype, truncate_dim, a default prompt) is read afresh, so a vector made before the change is not served.
        thinker = getattr(self.thinker, "model", None)  # None for a thinker behind an API
        live = [self.encoder.live_state, None if thinker is None else str(next(thinker.parameters()).dtype)]
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
        check_positive_int(batch_size, "batch_size")
        vectors = self.encoder.encode(documents, self.document_max_length, batch_size,
                                      show_progress(show_progress_bar, len(documents)), role="document")
        return vectors[0] if single else vectors

    # sentence-transformers-style entry points: its keywords where they mean something here, a clear error otherwise
    def encode_query(self, query, *, batch_size: int = 32, show_progress_bar: bool | None = None,
                     normalize_embeddings: bool = False, convert_to_numpy: bool = True, convert_to_tensor: bool = False,
                     precision: str = "float32", **kwargs):
        """`encode_queries` with sentence-transformers' keywords. Also takes `k`, `return_thoughts`,
        `aggregation`, `query_weight`. normalize_embeddings=True re-normalises the aggregated vectors (the
        official mean is not unit length); convert_to_tensor returns a torch tensor."""
        _refuse_st_keywords(kwargs, QUERY_OPTIONS, "encode_query")
        out = self.encode_queries(query, batch_size=batch_size, show_progress_bar=show_progress_bar, **kwargs)
        vectors = out.embeddings if isinstance(out, QueryEncoding) else out
        vectors = _st_output(vectors, normalize_embeddings, convert_to_numpy, convert_to_tensor, precision)
        return QueryEncoding(vectors, out.thoughts) if isinstance(out, QueryEncoding) else vectors

    def encode_document(self, document, *, batch_size: int = 32, show_progress_bar: bool | None = None,
                        normalize_embeddings: bool = True, convert_to_numpy: bool = True,
                        convert_to_tensor: bool = False, precision: str = "float32", **kwargs):
        """`encode_documents` with sentence-transformers' keywords (document vectors are always unit length)."""
        _refuse_st_keywords(kwargs, (), "encode_document")
        vectors = self.encode_documents(document, batch_size=batch_size, show_progress_bar=show_progress_bar)
        return _st_output(vectors, normalize_embeddings, convert_to_numpy, convert_to_tensor, precision)

    def similarity(self, a, b) -> torch.Tensor:
        """Cosine similarity of every row of `a` with every row of `b` (arrays or tensors, 1-D or 2-D), as
        sentence-transformers' `model.similarity`: the measure the index ranks by (query vectors are not unit length)."""
        a, b = (torch.atleast_2d(_as_float_tensor(x)) for x in (a, b))
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"similarity() needs vectors of one dimension: got shapes {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        return torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T

    def inference_settings(self) -> dict:
        """The settings that apply to this model's encoder: what eval JSONs record and a Chroma config rebuilds from."""
        return self.settings.recorded("lm" if isinstance(self.encoder, LMEncoder) else "sentence-transformers")

    # the settings most callers read, as attributes
    aggregation = property(lambda self: self.settings.aggregation)
    query_weight = property(lambda self: self.settings.query_weight)
    thought_input = property(lambda self: self.settings.thought_input)
    query_max_length = property(lambda self: self.settings.query_max_length)
    document_max_length = property(lambda self: self.settings.document_max_length)

    def load_options(self) -> dict:
        """The `from_pretrained` options that rebuild this model as it runs here (dtypes, quantization, prompt style,
        thought cache, settings), less the device, which the rebuilding machine picks: what a Chroma collection, a Ray
        worker and the integrations' saved configs record."""
        options = {"quantization": self.quantization, "fused": self.fused}
        # The thinker's dtype (a 4-bit one reloads with "auto"), which `from_pretrained(dtype=...)` also gives a
        # composite's encoders; without an in-process thinker, the encoder's.
        dtypes = self.weight_dtypes(default="auto")
        options["dtype"] = dtypes["thinker"] or dtypes["encoder"]
        if self.source.kind == "composite" and dtypes["thinker"] and dtypes["encoder"] != options["dtype"]:
            options["encoder_dtype"] = dtypes["encoder"]  # its encoders run in another dtype
        if self.thinker is not None:
            options["prompt_style"] = self.thinker.prompt_style
        options.update(self.inference_settings())  # the settings that apply to its encoder
        # A setting added later is left out of records at its neutral value, and a record without it means the
        # model's own, which may not be neutral: say it here, where the record rebuilds the model.
        options.update({name: getattr(self.settings, name) for name in ADDED_LATER})
        if self.quantization and self.thinker is not None and self.thinker.model is self.encoder.model:
            options["share_weights"] = True
        if self.thought_cache is None:
            options["thought_cache"] = False
        else:  # the default location is recorded as such, so another machine uses its own
            options["thought_cache"] = (True if Path(self.thought_cache.path) == Path(cache_dir()) / "thoughts.sqlite"
                                        else str(self.thought_cache.path))
        return options

    def weight_dtypes(self, default: str = "other") -> dict:
        """Short names ("bf16", "fp32", ...) of the dtypes the thinker and the encoder run in; `default` for weights
        of no float type (a 4-bit thinker); "thinker" is None without an in-process thinker."""
        thinker = getattr(self.thinker, "model", None)  # None for a thinker behind an API
        return {"thinker": None if thinker is None else weights_dtype_name(thinker, default),
                "encoder": weights_dtype_name(self.encoder.model, default)}

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def backend(self) -> str:
        """What runs the encoder: "transformers" (a causal LM) or "sentence-transformers"."""
        return "transformers" if isinstance(self.encoder, LMEncoder) else "sentence-transformers"

    def __repr__(self) -> str:
        style = self.thinker.prompt_style if self.thinker else None
        return (f"O1Embedder(name={self.name!r}, dim={self.dim}, prompt_style={style!r}, "
                f"quantization={self.quantization!r}, backend={self.backend!r})")


QUERY_OPTIONS = ("k", "return_thoughts", "aggregation", "query_weight")
# sentence-transformers keywords that have no meaning for a thinking embedder, with the reason given back
_NOT_HERE = {
    "prompt_name": "the encoder's own query/document prompts are applied by encode_query/encode_document",
    "prompt": "the encoder's own query/document prompts are applied by encode_query/encode_document",
    "device": "the device is chosen at load time (from_pretrained(device=...))",
    "output_value": "only sentence embeddings are returned",
    "chunk_size": "multi-process encoding is not offered; see o1_retriever.distributed for scale-out",
    "pool": "multi-process encoding is not offered; see o1_retriever.distributed for scale-out",
    "truncate_dim": "vectors keep the encoder's dimension",
}


def _as_float_tensor(x) -> torch.Tensor:
    """Vectors as a CPU float32 tensor: an array, a list, any tensor (any device, dtype, grad) or a QueryEncoding."""
    x = x.embeddings if isinstance(x, QueryEncoding) else x
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def _refuse_st_keywords(kwargs: dict, allowed: tuple, where: str) -> None:
    for name in kwargs:
        if name not in allowed:
            why = _NOT_HERE.get(name, "not a keyword this method knows")
            accepted = ("batch_size", "show_progress_bar", "normalize_embeddings", "convert_to_numpy",
                        "convert_to_tensor", "precision") + allowed
            raise TypeError(f"{where}() got {name}={kwargs[name]!r}: {why}; it accepts {', '.join(accepted)}")


def _st_output(vectors: np.ndarray, normalize: bool, to_numpy: bool, to_tensor: bool, precision: str):
    if precision != "float32":
        raise ValueError(f"precision={precision!r} is not supported; vectors are 'float32'")
    if normalize:
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
    if to_tensor:
        return torch.from_numpy(np.ascontiguousarray(vectors))
    if not to_numpy:  # sentence-transformers' convert_to_numpy=False: a list of 1-D tensors (one tensor for one text)
        tensor = torch.from_numpy(np.ascontiguousarray(vectors))
        return tensor if tensor.ndim == 1 else list(tensor)
    return vectors


def _compute_dtype(model) -> str | None:
    """The dtype an in-process thinker computes in ("bf16", "fp32", ...; a 4-bit one: that of its unquantized layers,
    its compute dtype), read at each call, as a cast in place changes it; None for a thinker behind an API."""
    if model is None:
        return None
    dtype = next((p.dtype for p in model.parameters() if p.dtype.is_floating_point), None)
    return DTYPE_NAMES.get(dtype, str(dtype))


def _refuse_backend(options: dict) -> None:
    if "backend" in options:
        raise TypeError(f"backend={options['backend']!r}: the backend option was removed; transformers runs every "
                        "model (drop the argument)")

