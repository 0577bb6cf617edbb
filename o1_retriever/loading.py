"""Load any supported checkpoint as (causal LM, tokenizer, prompt style), and fingerprint loaded weights.

Sources: a plain HF directory or hub id, a `.gguf` file, or an O1 checkpoint (merged, or an adapter directory in
any form `checkpoint` describes).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .adapter_loading import load_adapter
from .checkpoint import is_adapter
from .formatting import SPECIAL_TOKENS, add_special_tokens
from .quantized import quantized_copy, require_bitsandbytes
from .validation import QUANTIZATIONS, check_choice


@dataclass
class LoadedLM:
    model: torch.nn.Module
    tokenizer: object
    prompt_style: str  # "official" when the checkpoint was trained on <query>/<thought>, else "chat"
    source: str


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.endswith(".gguf") or os.sep + os.sep in name


def _check_quantization(quantization) -> None:
    check_choice(quantization, "quantization", QUANTIZATIONS)
    if quantization is not None:
        require_bitsandbytes(quantization)  # before a child process is started to quantize


# Class names of models that generate text; a checkpoint whose config names none of them (an encoder such as BERT)
# would load as a causal LM with a freshly initialised head and write noise.
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def _check_causal(source: str, path: Path) -> None:
    from transformers import AutoConfig
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError):
        if path.exists():
            raise  # a local model's unreadable config: the caller's error names it
        return  # a hub id not reachable now (offline): its cached quantized copy may still load, else the load says why
    architectures = getattr(config, "architectures", None) or []
    if not architectures or any(a.endswith(_CAUSAL_SUFFIXES) for a in architectures):
        return
    encoder = (path / "modules.json").is_file() or (path / "config_sentence_transformers.json").is_file()
    what = "a sentence-transformers encoder" if encoder else f"a {architectures[0]}"
    raise ValueError(f"{source!r} is {what}, not a causal language model, so it cannot think. To embed with it, "
                     f"pair it with a thinker: O1Embedder.composite(encoder={source!r}) (the bundled SmolLM2 thinks), "
                     "or name it as the encoder in a composite model's o1_composite.json")


def load_causal_lm(source: str, *, device: torch.device, dtype: torch.dtype,
                   quantization: str | None = None) -> LoadedLM:
    """A causal LM with transformers (any architecture it knows), the O1 tokens added, in eval mode."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"model path must be a str or PathLike, got {type(source).__name__}")
    source = str(source)
    path = Path(source).expanduser()
    if _looks_like_path(source) and not path.exists():
        raise ValueError(f"model path {source!r} does not exist; give a local directory, a .gguf file or a hub id")
    if path.is_file() and path.suffix != ".gguf":
        raise ValueError(f"model path {source!r} is a file, not a model; give the model's directory, a .gguf file or "
                         "a hub id")
    if path.is_dir() and not is_adapter(path) and not (path / "config.json").is_file():
        raise ValueError(f"model directory {source!r} holds no model: expected config.json beside the weights (a "
                         "transformers model) or adapter_config.json (an O1 LoRA checkpoint)")
    _check_quantization(quantization)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        if path.suffix != ".gguf" and not is_adapter(path):
            _check_causal(source, path)
        if quantization is not None:  # read from a copy already in the quantized layout (quantized.py says why)
            packed, had_tokens = quantized_copy(source, quantization, dtype, device)
            tokenizer = AutoTokenizer.from_pretrained(packed)
            model = AutoModelForCausalLM.from_pretrained(packed, dtype=dtype, device_map={"": str(device)})
        elif path.suffix == ".gguf" and path.is_file():
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            had_tokens = False
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        elif is_adapter(path):
            model, tokenizer = load_adapter(path, dtype)
            had_tokens = True
        else:
            tokenizer = AutoTokenizer.from_pretrained(source)
            vocab = tokenizer.get_vocab()
            had_tokens = all(t in vocab for t in SPECIAL_TOKENS)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as e:
        raise ValueError(f"could not load a causal LM from {source!r}: {e}") from e
    add_special_tokens(None if quantization is not None else model, tokenizer)
    if quantization is None:
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
