"""How an `O1Embedder` is built (`from_pretrained`, `composite`) and the options that build it again elsewhere
(`load_options`): the loading half of the embedder, a base class of `embedder.O1Embedder`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .adapter_loading import has_o1_tokens
from .checkpoint import is_adapter
from .composite import read_composite
from .default_model import (BUNDLED_NAMES, DEFAULT_NAME, MINILM_HUB_ID, SMOLLM2_HUB_ID, bundled_model_path, cache_dir,
                            minilm_path, smollm2_base_dir)
from .device import resolve_device, resolve_dtype, weights_dtype_name
from .encoding import LMEncoder, SentenceEncoder, load_encoder
from .loading import load_causal_lm
from .merging import merged_adapter_dir
from .model_source import ModelSource
from .quiet import quietly
from .remote_thinking import RemoteThinker
from .settings import ADDED_LATER, check_overrides, read_model_settings, resolve
from .thinking import Thinker
from .validation import QUANTIZATIONS, check_choice

if TYPE_CHECKING:
    from .embedder import O1Embedder


class Construction:
    """`O1Embedder`'s constructors and its rebuild record; `cls(...)` is `O1Embedder(...)`."""

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
        overrides = check_load_options(settings, quantization, prompt_style)  # before minutes of loading
        if path_or_id is not None and not isinstance(path_or_id, (str, os.PathLike)):
            raise TypeError(f"model path must be a str or PathLike (or None), got {type(path_or_id).__name__}")
        dev, dt = _device_and_dtype(device, dtype)
        bundled = bundled_model_path(path_or_id)
        _refuse_unknown_bundled_name(path_or_id, bundled)
        name = DEFAULT_NAME if path_or_id is None else str(path_or_id)
        source = bundled if bundled is not None else path_or_id
        spec = read_composite(source) if source is not None else None
        origin = None if name == DEFAULT_NAME else name  # what from_pretrained is given to load it again
        if bundled is None and origin is not None and Path(origin).expanduser().exists():
            # A relative path means another folder to a process elsewhere (a Chroma reader, a worker, a rebuilt
            # integration): the record holds the absolute one.
            origin = str(Path(origin).expanduser().resolve())
        kept = dict(quantization=quantization, thought_cache=thought_cache, fused=fused, vector_cache=vector_cache,
                    compile=compile,
                    source=ModelSource("joint" if spec is None else "composite", origin))
        if spec is not None:
            if share_weights:
                raise ValueError(f"share_weights=True applies to a joint model, whose one language model thinks and "
                                 f"embeds; {name!r} is a composite, whose encoder is a separate sentence-transformers "
                                 "model (it is never quantized): leave share_weights out")
            edt = dt if encoder_dtype is None else _device_and_dtype(dev, encoder_dtype, "encoder_dtype")[1]
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
        if prompt_style == "auto" and thinker_source != spec.thinker:  # the merged copy has the O1 tokens added
            prompt_style = "official" if has_o1_tokens(spec.thinker) else "chat"
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
        dev, dt = _device_and_dtype(device, dtype)
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


def check_load_options(settings: dict, quantization=None, prompt_style: str = "auto", where: str = "from_pretrained",
                       **dtypes) -> dict:
    """The checks `from_pretrained` makes before any loading, also made by a Ray driver before its actors load
    (`dtypes`: dtype=, encoder_dtype=, checked by name); returns the checked setting overrides."""
    _refuse_backend(settings)
    overrides = check_overrides(settings, where)
    check_choice(quantization, "quantization", QUANTIZATIONS)
    check_choice(prompt_style, "prompt_style", ("auto", "official", "chat"))
    for name, value in dtypes.items():
        if value is not None:
            resolve_dtype(value, resolve_device("cpu"), name)
    return overrides


def _device_and_dtype(device, dtype, dtype_argument: str = "dtype"):
    return (dev := resolve_device(device)), resolve_dtype(dtype, dev, dtype_argument)


def _refuse_unknown_bundled_name(path_or_id, bundled) -> None:
    """A name shaped like a bundled model's (a typo, or one of a newer release) would be looked up on the hub."""
    name = str(path_or_id)
    if bundled is None and name.startswith("o1-retriever-") and not Path(name).exists():
        raise ValueError(f"{name!r} is not a bundled model; the bundled ones are {list(BUNDLED_NAMES)} (or give a "
                         "model directory or hub id)")


def _refuse_backend(options: dict) -> None:
    if "backend" in options:
        raise TypeError(f"backend={options['backend']!r}: the backend option was removed; transformers runs every "
                        "model (drop the argument)")

