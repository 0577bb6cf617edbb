"""A quantized thinker that never holds full-precision weights in the caller's process.

bitsandbytes quantizes inside `from_pretrained`, which reads (and, for an adapter, first merges) the whole
model in full precision: a user asking for 4-bit to save memory would peak above the unquantized load. So the
quantizing is done once, in a child process, and its result saved in the quantized layout to the cache; every
load, the first included, then reads that copy: packed 4-bit (or int8) weights and nothing larger.

Run as a module it is that child: `python -m o1_retriever.quantized SOURCE QUANTIZATION DTYPE DEVICE OUT`.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import torch

from .atomic import atomic_path, sole_writer
from .default_model import cache_dir
from .device import DTYPE_NAMES
from .merging import _dir_key, plain_copy

MARKER = "o1_quantized.json"  # in a quantized copy: what it was made from, and whether it had the O1 tokens


def require_bitsandbytes(quantization: str) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ImportError(f"quantization={quantization!r} needs bitsandbytes: pip install bitsandbytes") from e


def bnb_config(quantization: str, dtype: torch.dtype):
    """The bitsandbytes settings of each quantization this package offers (NF4 with double quantization, or
    LLM.int8)."""
    require_bitsandbytes(quantization)
    from transformers import BitsAndBytesConfig
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)
    return BitsAndBytesConfig(load_in_8bit=True)


def _source_key(source: str) -> str:
    path = Path(source).expanduser()
    if path.is_dir():
        return _dir_key(path)
    text = f"{path.resolve()}:{path.stat().st_size}" if path.is_file() else source  # a file, else a hub id
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def quantized_copy(source: str, quantization: str, dtype: torch.dtype, device: torch.device) -> tuple[Path, bool]:
    """(directory of the quantized copy, whether the source had the O1 tokens), made by a child process when it
    is not in the cache yet."""
    device_type = torch.device(device).type
    name = f"{quantization}-{_source_key(source)}-{DTYPE_NAMES.get(dtype, str(dtype))}-{device_type}"
    out = cache_dir() / "models" / name
    if not (out / MARKER).exists():
        _check_reachable(source)
        done = subprocess.run([sys.executable, "-m", "o1_retriever.quantized", str(source), quantization,
                               str(dtype).removeprefix("torch."), str(device), str(out)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not (out / MARKER).exists():
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"quantizing {source!r} to {quantization} failed (exit {done.returncode}):\n{tail}")
    had_tokens = json.loads((out / MARKER).read_text(encoding="utf-8"))["had_o1_tokens"]
    return out, had_tokens


def _check_reachable(source: str) -> None:
    """A hub id the hub cache lacks, offline: said here, before a child process fails with the hub library's stack."""
    if Path(source).expanduser().exists():
        return
    from transformers import AutoConfig

    from .loading import unloadable  # loading imports this module
    try:
        AutoConfig.from_pretrained(source)
    except OSError as e:
        raise unloadable(source, e) from e


def _make(source: str, quantization: str, dtype_name: str, device: str, out: str) -> None:
    """One child at a time per copy: a second waits, then finds the copy made. Whatever a child killed earlier left
    (its hidden temporary, a copy without MARKER) is removed first: the lock says no writer is alive."""
    import shutil
    out = Path(out)
    with sole_writer(out, done=lambda: (out / MARKER).exists()) as todo:
        if todo:
            if out.is_dir():
                shutil.rmtree(out)
            _quantize(source, quantization, dtype_name, device, out)


def _quantize(source: str, quantization: str, dtype_name: str, device: str, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    dtype = getattr(torch, dtype_name)
    plain, had_tokens = plain_copy(source, dtype)
    model = AutoModelForCausalLM.from_pretrained(plain, quantization_config=bnb_config(quantization, dtype),
                                                 dtype=dtype, device_map={"": device})
    tokenizer = AutoTokenizer.from_pretrained(plain)
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        marker = {"source": source, "quantization": quantization, "dtype": dtype_name, "had_o1_tokens": had_tokens}
        (tmp / MARKER).write_text(json.dumps(marker), encoding="utf-8")


if __name__ == "__main__":
    _make(*sys.argv[1:6])
