"""Load any supported checkpoint as (causal LM, tokenizer, prompt style).

Sources: a plain HF directory or hub id, a `.gguf` file, or an official O1 Embedder checkpoint
(merged, or a LoRA adapter with `embedding/emb.pth` and maybe `embedding/lm_head.pth`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_path
from .default_model import cache_dir, convert_gguf, resolve_base_model
from .formatting import SPECIAL_TOKENS, add_special_tokens
from .validation import QUANTIZATIONS, check_choice


@dataclass
class LoadedLM:
    model: torch.nn.Module
    tokenizer: object
    prompt_style: str  # "official" when the checkpoint was trained on <query>/<thought>, else "chat"
    source: str


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.endswith(".gguf") or os.sep + os.sep in name


def _quantization_config(quantization, dtype):
    check_choice(quantization, "quantization", QUANTIZATIONS)
    if quantization is None:
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ImportError(f"quantization={quantization!r} needs bitsandbytes: pip install bitsandbytes") from e
    from transformers import BitsAndBytesConfig
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)
    return BitsAndBytesConfig(load_in_8bit=True)


def _load_module(path: Path, cls):
    """The official files are whole pickled modules; allow-list just that class, never a full unpickler."""
    with torch.serialization.safe_globals([cls]):
        module = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(module, cls):
        raise ValueError(f"{path} holds a {type(module).__name__}, expected a torch.nn.{cls.__name__}")
    return module


def _fit_output_rows(model, rows: int) -> None:
    """After new input rows arrive, give the LM head the same rows (tied models just re-tie)."""
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    head = model.get_output_embeddings()
    if head is not None and head.weight.shape[0] != rows:
        old = head.weight.data
        new = torch.nn.Linear(old.shape[1], rows, bias=False, dtype=old.dtype)
        new.weight.data[: old.shape[0]] = old[:rows]
        if rows > old.shape[0]:
            new.weight.data[old.shape[0]:] = old.mean(0, keepdim=True)
        model.set_output_embeddings(new)
    model.config.vocab_size = rows


def _set_token_rows(model, tokenizer, rows_file: Path, dtype) -> None:
    from safetensors.torch import load_file
    rows = load_file(str(rows_file))
    unknown = sorted(set(rows) - set(tokenizer.get_vocab()))
    if unknown:
        raise ValueError(f"{rows_file} has rows for {unknown}, which the adapter's tokenizer lacks")
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        for token, row in rows.items():
            weight[tokenizer.convert_tokens_to_ids(token)] = row.to(dtype)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()


def _load_adapter(adapter_dir: Path, dtype) -> tuple[torch.nn.Module, object]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = resolve_base_model(config.get("base_model_name_or_path") or "")
    if not base:
        raise ValueError(f"{adapter_dir}/adapter_config.json has no base_model_name_or_path")
    has_tok = any((adapter_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir if has_tok else base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    emb_file, head_file = adapter_dir / "embedding" / "emb.pth", adapter_dir / "embedding" / "lm_head.pth"
    if emb_file.exists():
        model.set_input_embeddings(_load_module(emb_file, torch.nn.Embedding).to(dtype))
        if head_file.exists():
            model.set_output_embeddings(_load_module(head_file, torch.nn.Linear).to(dtype))
            model.config.tie_word_embeddings = False
        _fit_output_rows(model, model.get_input_embeddings().weight.shape[0])
    add_special_tokens(model, tokenizer)
    rows_file = adapter_dir / "embedding" / "token_rows.safetensors"
    if rows_file.exists() and not emb_file.exists():  # compact form: only the O1 rows differ from the base
        _set_token_rows(model, tokenizer, rows_file, dtype)
    model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False).merge_and_unload()
    return model, tokenizer


DOC_SUFFIXES = (".md", ".png", ".jsonl")  # model card, loss plot and log: editing them changes no weight


def _dir_key(path: Path) -> str:
    """Cache key of a model dir: names, sizes and mtimes of the files that shape the model."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix not in DOC_SUFFIXES
                   and p.name != "training_args.json")
    return hashlib.sha256("".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files).encode()).hexdigest()[:16]


def _materialize(source: str, dtype) -> tuple[Path, bool]:
    """A plain HF directory with the O1 token rows, for quantized loading (bitsandbytes quantizes in
    from_pretrained, so every other source is first written out once to the cache).
    Returns (dir, whether the original checkpoint already had the O1 tokens)."""
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        key = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}".encode()).hexdigest()[:16]
        path, had = convert_gguf(path, cache_dir() / "models" / f"{path.stem}-{key}"), False
    elif (path / "adapter_config.json").exists():
        dt = str(dtype).removeprefix("torch.")
        out = cache_dir() / "models" / f"merged-{_dir_key(path)}-{dt}"
        if not (out / "config.json").exists():
            model, tokenizer = _load_adapter(path, dtype)
            source = {"adapter": str(path.resolve()), "dtype": dt}
            _save_atomically(out, model, tokenizer, source)
            _prune_stale_merges(out, source)
        return out, True
    elif not path.exists():
        path = Path(source)  # hub id
    from transformers import AutoModelForCausalLM, AutoTokenizer  # not needed for a merge already cached
    tokenizer = AutoTokenizer.from_pretrained(path)
    vocab = tokenizer.get_vocab()
    if all(t in vocab for t in SPECIAL_TOKENS):
        return path, True
    key = _dir_key(path) if path.exists() else hashlib.sha256(source.encode()).hexdigest()[:16]
    out = cache_dir() / "models" / f"o1tokens-{key}"
    if not (out / "config.json").exists():
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
    each is a full model, ~270 MB for the default)."""
    import shutil
    for other in current.parent.glob("merged-*"):
        try:
            theirs = json.loads((other / SOURCE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not ours to judge (older format, or another process mid-write)
        if other != current and theirs == mine:
            shutil.rmtree(other, ignore_errors=True)


def merged_adapter_dir(adapter_dir: str | Path, dtype) -> Path:
    """Merge a LoRA adapter once into a plain directory in the cache, so later loads skip peft."""
    return _materialize(str(adapter_dir), dtype)[0]


def load_causal_lm(source: str, *, device: torch.device, dtype: torch.dtype,
                   quantization: str | None = None) -> LoadedLM:
    """A causal LM with transformers (any architecture it knows), the O1 tokens added, in eval mode."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"model path must be a str or PathLike, got {type(source).__name__}")
    source = str(source)
    path = Path(source).expanduser()
    if _looks_like_path(source) and not path.exists():
        raise ValueError(f"model path {source!r} does not exist; give a local directory, a .gguf file or a hub id")
    qconfig = _quantization_config(quantization, dtype)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        if qconfig is not None:
            plain, had_tokens = _materialize(source, dtype)
            tokenizer = AutoTokenizer.from_pretrained(plain)
            model = AutoModelForCausalLM.from_pretrained(plain, quantization_config=qconfig, dtype=dtype,
                                                         device_map={"": str(device)})
        elif path.suffix == ".gguf" and path.is_file():
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            had_tokens = False
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        elif (path / "adapter_config.json").exists():
            model, tokenizer = _load_adapter(path, dtype)
            had_tokens = True
        else:
            tokenizer = AutoTokenizer.from_pretrained(source)
            vocab = tokenizer.get_vocab()
            had_tokens = all(t in vocab for t in SPECIAL_TOKENS)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as e:
        raise ValueError(f"could not load a causal LM from {source!r}: {e}") from e
    add_special_tokens(None if qconfig is not None else model, tokenizer)
    if qconfig is None:
        model.to(device)
    model.eval()
    return LoadedLM(model, tokenizer, "official" if had_tokens else "chat", source)


def fingerprint(model: torch.nn.Module, tokenizer, extra: str = "") -> str:
    """Stable id of the weights: shapes plus a strided sample of every tensor, and the vocab."""
    h = hashlib.sha256(extra.encode())
    h.update(str(len(tokenizer)).encode())
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode() + str(tuple(p.shape)).encode())
        if p.dtype.is_floating_point:
            flat = p.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 256)][:256].float().cpu()
            h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]
