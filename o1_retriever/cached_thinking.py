"""An `O1Embedder`'s thoughts through the thought cache: the keys (everything that changes the thoughts), the lookup,
and thinking the misses (fused with embedding where one model does both). A base class of `embedder.O1Embedder`."""
from __future__ import annotations

import json

import torch
from tqdm.auto import tqdm

from .batching import show_progress
from .cache import cache_key
from .device import compute_dtype_name
from .encoding import LMEncoder
from .sampling import SAMPLER
from .validation import as_text_list, check_k, check_positive_int, plain_int


class CachedThinking:
    """Thinking with the thought cache; reads the embedder's thinker, encoder, settings and cache."""

    @property
    def can_fuse(self) -> bool:
        t = self.thinker
        return (self.fused and t is not None and isinstance(self.encoder, LMEncoder)
                and t.model is self.encoder.model and self.quantization is None and t.prompt_style == "official")

    def _key_params(self) -> list[dict]:
        """The generation parameters thoughts are cached under, the current form first (a thinker behind an API
        that may drop refused sampling parameters gives the forms it may have kept them under)."""
        params = self.settings.generation() | {"quantization": self.quantization, "sampler": SAMPLER}
        model = self.thinker.model  # None for a thinker behind an API
        precision = compute_dtype_name(model) if model is not None else None
        # the same weights computing in bf16 and fp32 sample different thoughts; fp32 adds nothing to the key, so
        # thoughts cached before the dtype entered it (fp32 wherever `auto` picks it) stay found, as the eval caches do
        if precision not in (None, "fp32"):
            params["dtype"] = precision
        shaping = _shaping_generation_config(self.thinker.model)
        if shaping:  # only when set, so the keys of models that set none stay as they were
            params["generation_config"] = shaping
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
        k = check_k(plain_int(k))
        if self.thinker is None or k == 0 or self.thought_cache is None or not queries:
            return 0.0
        found = self._cached(queries, k)
        return sum(q in found for q in queries) / len(queries)

    def think(self, queries, k: int = 3, batch_size: int = 32, show_progress_bar: bool | None = None) -> list:
        """k thoughts per query (list of lists; a flat list for a single str)."""
        queries, single = as_text_list(queries, "queries")
        k = check_k(plain_int(k))  # a plain int: k keys the thought cache, whose JSON has no numpy types
        batch_size = check_positive_int(plain_int(batch_size), "batch_size")
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
        # One batch at a time, each batch's thoughts stored as soon as they exist: a run stopped after hours of
        # thinking (Ctrl-C, a crash, a killed job) keeps all but the batch it was in, and the same call resumes.
        keep = getattr(self.thinker, "cacheable", lambda *_: True)  # a remote thinker may refuse some thoughts
        with tqdm(total=len(todo), desc="Thinking", disable=not progress) as bar:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start:start + batch_size]
                made = self._think_batch(chunk, k, batch_size, vectors if want_vectors else None)
                fresh.update(zip(chunk, made))
                if self.thought_cache is not None:
                    # keyed as made: a server's refusal of a sampling parameter, learned while thinking, changes the key
                    self.thought_cache.put_many({key: fresh[q] for q, key in zip(chunk, self._keys(chunk, k))
                                                 if keep(fresh[q], k, self.settings)})
                bar.update(len(chunk))
        return [hits[q] if q in hits else fresh[q] for q in queries], vectors

    def _think_batch(self, todo, k, batch_size, vectors: dict | None) -> list[list[str]]:
        """k thoughts for each of `todo`; with `vectors`, also their fused vectors, added to it by query."""
        if vectors is None:
            return self.thinker.think(todo, k, self.settings, batch_size, False)
        made, parts = self.thinker.think(todo, k, self.settings, batch_size, False, read=self.encoder.encode_generated)
        vecs = torch.nn.functional.normalize(torch.cat([p[0] for p in parts]), dim=-1).cpu().numpy()
        used = [ids for p in parts for ids in p[1]]
        # Keep a fused vector only if re-encoding the decoded text would read the very same ids.
        texts = self._query_texts([q for q in todo for _ in range(k)], [t for ts in made for t in ts])
        same = [a == b for a, b in zip(self.encoder.tokenize(texts, self.query_max_length), used)]
        vectors.update({q: vecs[i * k:(i + 1) * k] for i, q in enumerate(todo) if all(same[i * k:(i + 1) * k])})
        return made


# What a model's generation_config may hold that the thinker's generate() call sets itself, that draws no other
# token, or that generate() applies only with do_sample (the warpers: the thinker samples itself, do_sample=False);
# anything else it sets (repetition_penalty, no_repeat_ngram_size, bad_words_ids, ...) generate() applies.
_NOT_SHAPING = frozenset({"transformers_version", "_from_model_config", "bos_token_id", "pad_token_id", "eos_token_id",
                          "do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "min_new_tokens",
                          "max_length", "use_cache", "cache_implementation", "compile_config",
                          "return_dict_in_generate", "output_attentions", "output_hidden_states", "output_scores",
                          "output_logits", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "top_h"})


def _shaping_generation_config(model) -> str | None:
    """The settings of an in-process thinker's generation_config (its checkpoint's generation_config.json, or set in
    place) that change the thoughts sampled, as JSON; None when it sets none or for a thinker behind an API."""
    config = getattr(model, "generation_config", None)
    shaping = {} if config is None else {name: value for name, value in config.to_diff_dict().items()
                                         if name not in _NOT_SHAPING}
    return json.dumps(shaping, sort_keys=True, default=str) if shaping else None
