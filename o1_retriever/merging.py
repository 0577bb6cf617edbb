"""Plain transformers directories written once to the cache: a LoRA adapter merged into its base (later loads skip
peft), and, for quantized loading, any other source with the O1 tokens added (bitsandbytes quantizes inside
from_pretrained, so it needs a plain directory)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from .atomic import atomic_path, sole_writer
from .adapter_loading import has_o1_tokens, load_adapter
from .checkpoint import is_adapter
from .default_model import cache_dir, convert_gguf
from .formatting import SPECIAL_TOKENS, add_special_tokens

DOC_SUFFIXES = (".md", ".png", ".jsonl")  # model card, loss plot and log: editing them changes no weight


def _dir_key(path: Path) -> str:
    """Cache key of a model dir: names, sizes and mtimes of the files that shape the model."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix not in DOC_SUFFIXES
                   and p.name != "training_args.json")
    return hashlib.sha256("".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files).encode()).hexdigest()[:16]


def plain_copy(source: str, dtype) -> tuple[Path, bool]:
    """A plain HF directory with the O1 token rows, for quantized loading (bitsandbytes quantizes in
    from_pretrained, so every other source is first written out once to the cache).
    Returns (dir, whether the original checkpoint already had the O1 tokens)."""
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        key = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}".encode()).hexdigest()[:16]
        path = convert_gguf(path, cache_dir() / "models" / f"{path.stem}-{key}")  # its tokens are looked at below
    elif is_adapter(path):  # the merged copy always has the O1 tokens: whether the adapter was trained on them
        return merged_adapter_dir(path, dtype), has_o1_tokens(path)
    elif not path.exists():
        path = Path(source)  # hub id
    from transformers import AutoModelForCausalLM, AutoTokenizer  # not needed for a merge already cached
    tokenizer = AutoTokenizer.from_pretrained(path)
    vocab = tokenizer.get_vocab()
    if all(t in vocab for t in SPECIAL_TOKENS):
        return path, True
    key = _dir_key(path) if path.exists() else hashlib.sha256(source.encode()).hexdigest()[:16]
    out = cache_dir() / "models" / f"o1tokens-{key}"
    with sole_writer(out, done=lambda: (out / "config.json").exists()) as todo:
        if todo:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
            add_special_tokens(model, tokenizer)
            _save_atomically(out, model, tokenizer)
    return out, False


SOURCE_FILE = "o1_source.json"  # in a merged copy: the adapter it came from, so a newer merge can retire it


def _save_atomically(out: Path, model, tokenizer, source: dict | None = None) -> None:
    """All or nothing: a killed process never leaves a half-written copy that a later load would take for
    complete (config.json is written before the weights)."""
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if source is not None:
            (tmp / SOURCE_FILE).write_text(json.dumps(source), encoding="utf-8")


def _prune_stale_merges(current: Path, mine: dict) -> None:
    """Delete older merged copies of the same adapter at the same dtype (left by an upgrade or a retrain:
    each is a full model)."""
    for other in current.parent.glob("merged-*"):
        try:
            theirs = json.loads((other / SOURCE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not ours to judge (older format, or another process mid-write)
        if other != current and theirs == mine:
            shutil.rmtree(other, ignore_errors=True)


def merged_adapter_dir(adapter_dir: str | Path, dtype) -> Path:
    """Merge a LoRA adapter once into a plain directory in the cache, so later loads skip peft."""
    path = Path(adapter_dir).expanduser()
    dt = str(dtype).removeprefix("torch.")
    out = cache_dir() / "models" / f"merged-{_dir_key(path)}-{dt}"
    with sole_writer(out, done=lambda: (out / "config.json").exists()) as todo:
        if todo:
            model, tokenizer = load_adapter(path, dtype)
            source = {"adapter": str(path.resolve()), "dtype": dt}
            _save_atomically(out, model, tokenizer, source)
            _prune_stale_merges(out, source)
    return out
