"""Device and dtype choice: bf16 where the hardware runs it fast, fp32 elsewhere."""
from __future__ import annotations

import functools

import torch
from tqdm.auto import tqdm

_DTYPES = {"auto": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
           "fp16": torch.float16, "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16 makes bf16 matmuls several times faster than fp32 on a CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from e


def resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        dtype = "auto"
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; use one of {sorted(_DTYPES)} or a torch.dtype")
    if dtype != "auto":
        return _DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """The short name ('bf16', 'fp16', 'fp32') results and options use for a resolved dtype."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[dtype]


def is_oom(error: BaseException) -> bool:
    """A CUDA out-of-memory error (older torch raises it as a plain RuntimeError)."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def in_batches(items, batch_size: int, step, desc: str, show_progress_bar: bool) -> list:
    """[step(chunk) for consecutive chunks of items]. Out of GPU memory, the batch halves and the chunk is
    retried: a batch size too large for the device costs retries, not the call."""
    parts, start = [], 0
    with tqdm(total=len(items), desc=desc, disable=not show_progress_bar) as bar:
        while start < len(items):
            chunk = items[start: start + batch_size]
            try:
                parts.append(step(chunk))
            except (torch.OutOfMemoryError, RuntimeError) as e:
                if not is_oom(e) or batch_size == 1:
                    raise
                batch_size = max(1, batch_size // 2)
                torch.cuda.empty_cache()
                continue
            start += len(chunk)
            bar.update(len(chunk))
    return parts
