"""`O1Embedder`'s sentence-transformers-style entry points (`encode_query`, `encode_document`, `similarity`): its
keywords where they mean something here, a clear error naming the reason otherwise. A base class of
`embedder.O1Embedder`."""
from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import torch

from .validation import as_text_list, plain_int


class SentenceTransformerSurface:
    """What sentence-transformers users call, over the embedder's `encode_queries` / `encode_documents`."""

    def encode_query(self, query, *, batch_size: int = 32, show_progress_bar: bool | None = None,
                     normalize_embeddings: bool = False, convert_to_numpy: bool = True, convert_to_tensor: bool = False,
                     precision: str | None = "float32", truncate_dim: int | None = None, **kwargs):
        """`encode_queries` with sentence-transformers' keywords, applied to the aggregated vector as
        `SentenceTransformer.encode` applies them to a sentence embedding: cut to `truncate_dim`, normalised if asked
        (the official mean is not unit length), quantized to `precision` over the call's vectors, returned as numpy,
        a tensor on `self.device` or a list of tensors. Also takes `k`, `return_thoughts`, `aggregation`,
        `query_weight`."""
        kwargs = refuse_st_keywords(kwargs, QUERY_OPTIONS, "encode_query")
        query, count = _texts(query, "queries")
        # before any thinking, which a refused option would waste
        options = self._st_options(count, normalize_embeddings, convert_to_numpy, convert_to_tensor, precision,
                                   truncate_dim)
        out = self.encode_queries(query, batch_size=batch_size, show_progress_bar=show_progress_bar, **kwargs)
        with_thoughts = kwargs.get("return_thoughts", False)  # then a QueryEncoding came back
        vectors = st_output(out.embeddings if with_thoughts else out, **options)
        return dataclasses.replace(out, embeddings=vectors) if with_thoughts else vectors

    def encode_document(self, document, *, batch_size: int = 32, show_progress_bar: bool | None = None,
                        normalize_embeddings: bool = False, convert_to_numpy: bool = True,
                        convert_to_tensor: bool = False, precision: str | None = "float32",
                        truncate_dim: int | None = None, **kwargs):
        """`encode_documents` with sentence-transformers' keywords, as `encode_query` applies them. The vectors are
        unit length already; cut by `truncate_dim` they are not, unless normalize_embeddings=True (as in
        sentence-transformers)."""
        refuse_st_keywords(kwargs, (), "encode_document")
        document, count = _texts(document, "documents")
        options = self._st_options(count, normalize_embeddings, convert_to_numpy, convert_to_tensor, precision,
                                   truncate_dim)
        vectors = self.encode_documents(document, batch_size=batch_size, show_progress_bar=show_progress_bar)
        return st_output(vectors, **options)

    def _st_options(self, count, normalize, to_numpy, to_tensor, precision, truncate_dim) -> dict:
        """st_output's keywords, each checked."""
        check_precision(precision, count)
        if truncate_dim is not None:  # self.dim behind a server is a request (GET /health): only when needed
            encoder = getattr(getattr(self, "encoder", None), "model", None)  # none behind a server (RemoteEmbedder)
            truncate_dim = check_truncate_dim(truncate_dim, self.dim, getattr(encoder, "truncate_dim", None))
        return dict(normalize=normalize, to_numpy=to_numpy, to_tensor=to_tensor, precision=precision,
                    truncate_dim=truncate_dim, device=self.device)

    def similarity(self, a, b) -> torch.Tensor:
        """Cosine similarity of every row of `a` with every row of `b` (arrays or tensors, 1-D or 2-D), as
        sentence-transformers' `model.similarity`: the measure the index ranks by (query vectors are not unit length)."""
        a, b = (torch.atleast_2d(as_float_tensor(getattr(x, "embeddings", x))) for x in (a, b))  # a QueryEncoding too
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"similarity() needs vectors of one dimension: got shapes {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        return torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T


QUERY_OPTIONS = ("k", "return_thoughts", "aggregation", "query_weight")
# sentence-transformers keywords that have no meaning for a thinking embedder, with the reason given back
_NOT_HERE = {
    "prompt_name": "the encoder's own query/document prompts are applied by encode_query/encode_document",
    "prompt": "the encoder's own query/document prompts are applied by encode_query/encode_document",
    "device": "the device is chosen at load time (from_pretrained(device=...))",
    "output_value": "only sentence embeddings are returned",
    "chunk_size": "multi-process encoding is not offered; see o1_retriever.distributed for scale-out",
    "pool": "multi-process encoding is not offered; see o1_retriever.distributed for scale-out",
}


def as_float_tensor(x) -> torch.Tensor:
    """Vectors as a CPU float32 tensor: an array, a list, or any tensor (any device, dtype, grad)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


# sentence-transformers' own defaults for them, which ask for nothing beyond what is done here: code written for a
# SentenceTransformer that passes them explicitly (a wrapper forwarding every keyword) keeps working
_ST_DEFAULTS = {"prompt_name": None, "prompt": None, "device": None, "output_value": "sentence_embedding",
                "chunk_size": None, "pool": None}


def _is_st_default(name: str, value) -> bool:
    if name not in _ST_DEFAULTS:
        return False
    default = _ST_DEFAULTS[name]
    return value is None if default is None else isinstance(value, str) and value == default


def refuse_st_keywords(kwargs: dict, allowed: tuple, where: str) -> dict:
    """The keywords left for the embedder's own method, once sentence-transformers' no-op defaults are set aside;
    any other keyword outside `allowed` raises, naming it and the reason."""
    kwargs = {name: value for name, value in kwargs.items() if not _is_st_default(name, value)}
    for name in kwargs:
        if name not in allowed:
            why = _NOT_HERE.get(name, "not a keyword this method knows")
            accepted = ("batch_size", "show_progress_bar", "normalize_embeddings", "convert_to_numpy",
                        "convert_to_tensor", "precision", "truncate_dim") + allowed
            raise TypeError(f"{where}() got {name}={kwargs[name]!r}: {why}; it accepts {', '.join(accepted)}")
    return kwargs


PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")  # sentence-transformers' own


def _texts(texts, name: str) -> tuple:
    """The texts, checked, as the embedder's method takes them (a str stays a str), and how many there are."""
    texts, single = as_text_list(texts, name)
    return (texts[0] if single else texts), len(texts)


def check_precision(precision, count: int) -> None:
    """`precision` as `SentenceTransformer.encode` takes it (None: no quantization), for `count` texts."""
    if precision is not None and (not isinstance(precision, str) or precision not in PRECISIONS):
        raise ValueError(f"precision={precision!r} is not supported; use one of {list(PRECISIONS)}")
    if precision in ("int8", "uint8") and count == 1:  # sentence-transformers refuses it too, after the work
        raise ValueError(f"precision={precision!r} takes its ranges from the call's vectors, and one text gives one "
                         "vector: encode a batch, or encode in float32 and call sentence_transformers."
                         "quantize_embeddings with ranges or calibration_embeddings")
    if precision not in (None, "float32") and importlib.util.find_spec("sentence_transformers") is None:
        raise ImportError(f"precision={precision!r} quantizes with sentence-transformers: "
                          "pip install sentence-transformers")


def check_truncate_dim(truncate_dim, dim: int, model_cut: int | None = None) -> int | None:
    """A per-call `truncate_dim`: None, or an int in [1, dim]. `model_cut`: the encoder model's own truncate_dim,
    which already cut its vectors to `dim` (they cannot be lengthened again)."""
    truncate_dim = plain_int(truncate_dim)
    if truncate_dim is None:
        return None
    why = f" (the encoder model's own truncate_dim={model_cut} made them so)" if model_cut is not None else ""
    if isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int):
        raise TypeError(f"truncate_dim must be an int from 1 to {dim} or None, got {truncate_dim!r}")
    if not 1 <= truncate_dim <= dim:
        raise ValueError(f"truncate_dim={truncate_dim} is out of range: the vectors have {dim} dimensions{why}; "
                         f"use an int from 1 to {dim}, or None to keep them all")
    return truncate_dim


def st_output(vectors: np.ndarray, *, normalize: bool, to_numpy: bool, to_tensor: bool, precision: str | None,
              truncate_dim: int | None, device) -> np.ndarray | torch.Tensor | list:
    """Vectors as `SentenceTransformer.encode` returns them for these keywords, in its order: cut to truncate_dim,
    normalised, quantized over all the call's vectors; float vectors as a tensor stay on the model's `device`,
    quantized ones come back from numpy, on the CPU (both as in sentence-transformers). The options are checked by
    the caller, before the work."""
    single = vectors.ndim == 1
    tensor = torch.from_numpy(np.ascontiguousarray(np.atleast_2d(vectors)[:, :truncate_dim]))
    if normalize:  # sentence-transformers' own call, so the rounding is the same
        tensor = torch.nn.functional.normalize(tensor, p=2, dim=1)
    quantized = precision not in (None, "float32")
    if quantized and len(tensor):
        from sentence_transformers import quantize_embeddings
        tensor = torch.from_numpy(quantize_embeddings(tensor.numpy(), precision=precision))
    elif quantized:  # no texts: no vectors, in the precision's dtype and width (packed bits for the binary ones)
        width = tensor.shape[1] if precision.endswith("int8") else -(-tensor.shape[1] // 8)
        tensor = torch.zeros((0, width), dtype=torch.int8 if precision in ("int8", "binary") else torch.uint8)
    if to_numpy and not to_tensor:
        out = tensor.numpy()
    else:  # a tensor, or (convert_to_numpy=False) a list of 1-D tensors
        tensor = tensor if quantized else tensor.to(device)
        out = tensor if to_tensor else list(tensor)
    return out[0] if single else out
