"""`O1Embedder`'s sentence-transformers-style entry points (`encode_query`, `encode_document`, `similarity`): its
keywords where they mean something here, a clear error naming the reason otherwise. A base class of
`embedder.O1Embedder`."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch


class SentenceTransformerSurface:
    """What sentence-transformers users call, over the embedder's `encode_queries` / `encode_documents`."""

    def encode_query(self, query, *, batch_size: int = 32, show_progress_bar: bool | None = None,
                     normalize_embeddings: bool = False, convert_to_numpy: bool = True, convert_to_tensor: bool = False,
                     precision: str = "float32", **kwargs):
        """`encode_queries` with sentence-transformers' keywords. Also takes `k`, `return_thoughts`,
        `aggregation`, `query_weight`. normalize_embeddings=True re-normalises the aggregated vectors (the
        official mean is not unit length); convert_to_tensor returns a torch tensor."""
        kwargs = refuse_st_keywords(kwargs, QUERY_OPTIONS, "encode_query")
        check_precision(precision)  # before any thinking, which a refused precision would waste
        out = self.encode_queries(query, batch_size=batch_size, show_progress_bar=show_progress_bar, **kwargs)
        with_thoughts = kwargs.get("return_thoughts", False)  # then a QueryEncoding came back
        vectors = st_output(out.embeddings if with_thoughts else out, normalize_embeddings, convert_to_numpy,
                            convert_to_tensor)
        return dataclasses.replace(out, embeddings=vectors) if with_thoughts else vectors

    def encode_document(self, document, *, batch_size: int = 32, show_progress_bar: bool | None = None,
                        normalize_embeddings: bool = True, convert_to_numpy: bool = True,
                        convert_to_tensor: bool = False, precision: str = "float32", **kwargs):
        """`encode_documents` with sentence-transformers' keywords (document vectors are always unit length)."""
        refuse_st_keywords(kwargs, (), "encode_document")
        check_precision(precision)
        vectors = self.encode_documents(document, batch_size=batch_size, show_progress_bar=show_progress_bar)
        return st_output(vectors, normalize_embeddings, convert_to_numpy, convert_to_tensor)

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
    "truncate_dim": "vectors keep the encoder's dimension",
}


def as_float_tensor(x) -> torch.Tensor:
    """Vectors as a CPU float32 tensor: an array, a list, or any tensor (any device, dtype, grad)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


# sentence-transformers' own defaults for them, which ask for nothing beyond what is done here: code written for a
# SentenceTransformer that passes them explicitly (a wrapper forwarding every keyword) keeps working
_ST_DEFAULTS = {"prompt_name": None, "prompt": None, "device": None, "output_value": "sentence_embedding",
                "chunk_size": None, "pool": None, "truncate_dim": None}


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
                        "convert_to_tensor", "precision") + allowed
            raise TypeError(f"{where}() got {name}={kwargs[name]!r}: {why}; it accepts {', '.join(accepted)}")
    return kwargs


def check_precision(precision) -> None:
    if precision not in ("float32", None):  # None is sentence-transformers' spelling of no quantization too
        raise ValueError(f"precision={precision!r} is not supported; vectors are 'float32' (to quantize them, pass "
                         "the output to sentence_transformers.quantization.quantize_embeddings)")


def st_output(vectors: np.ndarray, normalize: bool, to_numpy: bool, to_tensor: bool):
    """Vectors as sentence-transformers' `encode` returns them for these keywords (the precision is checked before
    any work, by the caller)."""
    if normalize:
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
    if to_tensor:
        return torch.from_numpy(np.ascontiguousarray(vectors))
    if not to_numpy:  # sentence-transformers' convert_to_numpy=False: a list of 1-D tensors (one tensor for one text)
        tensor = torch.from_numpy(np.ascontiguousarray(vectors))
        return tensor if tensor.ndim == 1 else list(tensor)
    return vectors


