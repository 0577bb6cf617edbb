"""What runs inside the Ray actors: one `O1Embedder` per actor, loaded once, then fed batches by Ray Data."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import settings

# from_pretrained options a distributed run passes on (the device is the actor's own: its GPU, or the CPU)
LOAD_OPTIONS = tuple(name for name in settings.LOAD_OPTIONS if name != "device")


@dataclass(frozen=True)
class ModelSpec:
    """How every actor loads the same model: `O1Embedder.from_pretrained(model, **options)` on its own device."""
    model: str | None = None
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.model is not None and not isinstance(self.model, str):
            raise TypeError(f"model must be a path or hub id (str) or None, got {type(self.model).__name__}")
        unknown = sorted(set(self.options) - set(LOAD_OPTIONS))
        if unknown:
            raise TypeError(f"unknown model option(s) {unknown}; allowed: {list(LOAD_OPTIONS)} (the device is "
                            "chosen per actor)")
        _check_options(self.options)  # before Ray starts and every actor fails to load the model with them
        from ..default_model import bundled_model_path
        from ..model_source import legacy_source
        _refuse_parts(legacy_source(self.model), self.model)  # a name recorded before ModelSource
        if self.model is not None and bundled_model_path(self.model) is None and Path(self.model).expanduser().exists():
            # A local model by its absolute path: workers (and a later `load`) do not share this process's working
            # directory, and "model/", "./model" and "/abs/model" are one model to a resumed run.
            object.__setattr__(self, "model", str(Path(self.model).expanduser().resolve()))

    @classmethod
    def of(cls, embedder) -> "ModelSpec":
        """The spec that rebuilds an already loaded embedder (its resolved dtype and settings) on a worker."""
        _refuse_parts(embedder.source, embedder.name)
        return cls(embedder.source.path, {k: v for k, v in embedder.load_options().items() if k in LOAD_OPTIONS})

    def check_here(self, local: bool) -> None:
        """Refuse a model path that does not exist here: a relative one anywhere (a worker would look for it in its
        own folder), an absolute one when the actors run on this machine (`local`: a Ray started here)."""
        from ..loading import _looks_like_path
        path = Path(self.model or "").expanduser()
        if self.model and _looks_like_path(self.model) and not path.exists() and (local or not path.is_absolute()):
            raise ValueError(f"model path {self.model!r} does not exist; give a local directory, a .gguf file or a "
                             "hub id")

    def as_dict(self) -> dict:
        return {"model": self.model, "options": dict(sorted(self.options.items()))}

    def load(self, device: str | None = None):
        from ..embedder import O1Embedder
        return O1Embedder.from_pretrained(self.model, device=device, **self.options)


def _check_options(options: dict) -> None:
    """The checks `from_pretrained` makes before loading (settings, dtypes, quantization, prompt style)."""
    from ..construction import check_load_options
    check_load_options({k: v for k, v in options.items() if k in settings.NAMES}, options.get("quantization"),
                       options.get("prompt_style", "auto"), "the model options", dtype=options.get("dtype"),
                       encoder_dtype=options.get("encoder_dtype"))


def _refuse_parts(source, name) -> None:
    if source.from_parts:
        raise ValueError(f"{name!r} was assembled from parts in one process (e.g. by O1Embedder.composite()) and "
                         "cannot be rebuilt on a worker; save it as a composite model directory and pass its path")


def _actor_device() -> str:
    """The GPU Ray assigned to this actor, else the CPU (even on a node with GPUs the actor was not given)."""
    import ray
    return "cuda" if ray.get_gpu_ids() else "cpu"


class _EmbedderActor:
    """Loads the model once per actor; `encode` embeds documents, or thinks and embeds queries."""

    def __init__(self, spec: ModelSpec, kind: str, k: int, batch_size: int):
        self.kind, self.k, self.batch_size = kind, k, batch_size
        self.embedder = spec.load(_actor_device())
        self.info = {"kind": kind, "k": k if kind == "queries" else None, "model": spec.as_dict(),
                     "fingerprint": self.embedder.fingerprint,
                     "encoder_fingerprint": self.embedder.encoder_fingerprint,
                     "dim": int(self.embedder.dim), "dtype": self._dtype()}

    def _dtype(self) -> str:
        """The manifest's dtype: the thinker's, else (an encoder alone) the encoder's."""
        dtypes = self.embedder.weight_dtypes()
        return dtypes["thinker"] or dtypes["encoder"]

    def encode(self, texts: list[str]):
        """(vectors, thoughts or None)."""
        if self.kind == "documents":
            return self.embedder.encode_documents(texts, batch_size=self.batch_size, show_progress_bar=False), None
        # The thought cache (the embedder's, on this worker's disk) serves queries it has thought about before.
        encoded = self.embedder.encode_queries(texts, k=self.k, batch_size=self.batch_size, show_progress_bar=False,
                                               return_thoughts=True)
        return encoded.embeddings, encoded.thoughts


class ShardWriter(_EmbedderActor):
    """Ray Data batch: shard descriptors (one row per shard). Each shard is read, encoded and written whole."""

    def __init__(self, spec: ModelSpec, kind: str, k: int, batch_size: int, output: str):
        super().__init__(spec, kind, k, batch_size)
        self.output = Path(output)

    def __call__(self, batch: dict) -> dict:
        from .outputs import write_shard
        from .shards import Shard, read_shard
        names, rows, seconds = [], [], []
        for i in range(len(batch["name"])):
            shard = Shard(**{key: _python(batch[key][i]) for key in Shard.__dataclass_fields__})
            start = time.perf_counter()
            records = read_shard(shard, self.kind)
            vectors, thoughts = self.encode([r.text for r in records])
            write_shard(self.output, shard.name, records, vectors, thoughts, self.info)
            names.append(shard.name)
            rows.append(len(records))
            seconds.append(time.perf_counter() - start)
        return {"name": names, "rows": rows, "seconds": seconds}


class RowEncoder(_EmbedderActor):
    """Ray Data batch: rows `{row, text}` held in the object store; returns `{row, vector}` (no files)."""

    def __init__(self, spec: ModelSpec, kind: str, k: int, batch_size: int, encoder_fingerprint: str | None = None):
        super().__init__(spec, kind, k, batch_size)
        if encoder_fingerprint is not None and self.embedder.encoder_fingerprint != encoder_fingerprint:
            raise ValueError(f"the worker loaded {spec.model or 'the default model'} with encoder fingerprint "
                             f"{self.embedder.encoder_fingerprint}, the driver's embedder has {encoder_fingerprint}: "
                             "the model files differ between machines")

    def __call__(self, batch: dict) -> dict:
        vectors, _ = self.encode([str(t) for t in batch["text"]])
        return {"row": batch["row"], "vector": vectors}


def _python(value):
    """numpy scalars from a Ray Data batch as plain Python values."""
    return value.item() if hasattr(value, "item") else value
