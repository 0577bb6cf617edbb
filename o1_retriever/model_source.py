"""`ModelSource`: how an `O1Embedder` was built, so that another process can build the same one again (a Chroma
collection reopened elsewhere, a Ray worker, a LlamaIndex `to_dict`). Before it, the meaning hid in name prefixes
("composite:thinker+encoder", "encoder:label"); collections recorded then are read with `legacy_source`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

KINDS = ("joint", "composite", "encoder")
_PREFIXES = {"composite:": "composite", "encoder:": "encoder"}  # the names of parts before ModelSource (read only)


@dataclass(frozen=True)
class ModelSource:
    """kind: "joint" (one causal LM thinks and embeds), "composite" (a thinker plus a sentence-transformers
    encoder) or "encoder" (a sentence-transformers encoder alone, no thinking).
    path: what `O1Embedder.from_pretrained` loads it from (a directory, hub id or bundled name; None: the default).
    thinker, encoder: the parts it was assembled from in one process (`O1Embedder.composite`, an encoder alone),
    when no path loads it."""
    kind: str
    path: str | None = None
    thinker: str | None = None
    encoder: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"model kind {self.kind!r} is not one of {list(KINDS)}")
        for part in fields(self)[1:]:
            value = getattr(self, part.name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"ModelSource.{part.name} must be a str or None, got {type(value).__name__}")

    @property
    def from_parts(self) -> bool:
        """Assembled from parts in one process: `from_pretrained` cannot load it again."""
        return self.thinker is not None or self.encoder is not None

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, values) -> "ModelSource":
        names = [f.name for f in fields(cls)]
        if not isinstance(values, dict) or set(values) - set(names):
            raise ValueError(f"a model source is a dict with keys among {names}, got {values!r}")
        return cls(**values)

    @classmethod
    def of_path(cls, path) -> "ModelSource":
        """The source of `from_pretrained(path)`, read from the directory: a composite holds o1_composite.json."""
        from .composite import COMPOSITE_FILE
        from .default_model import DEFAULT_NAME, bundled_model_path
        path = None if path is None or str(path) == DEFAULT_NAME else str(path)
        directory = bundled_model_path(path) or Path(path).expanduser()
        return cls("composite" if (directory / COMPOSITE_FILE).is_file() else "joint", path)


def legacy_source(model: str | None) -> ModelSource:
    """The source a model name recorded before `ModelSource` stands for: "composite:T+E" and "encoder:E" name
    parts assembled in one process; anything else is a path, hub id or bundled name (None: the default)."""
    for prefix, kind in _PREFIXES.items():
        if model is not None and model.startswith(prefix):
            rest = model[len(prefix):]
            if kind == "encoder":
                return ModelSource(kind, encoder=rest)
            thinker, _, encoder = rest.partition("+")
            return ModelSource(kind, thinker=thinker, encoder=encoder)
    return ModelSource.of_path(model)
