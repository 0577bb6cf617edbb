"""Device and dtype choice: bf16 where the hardware runs it fast, fp32 elsewhere; the short dtype names."""
from __future__ import annotations

import functools

import torch

# The one map of dtype names: the short names options, configs and results use; torch's own names read too.
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
_DTYPES = {"auto": None} | {name: dt for dt, name in DTYPE_NAMES.items()} \
    | {str(dt).removeprefix("torch."): dt for dt in DTYPE_NAMES}


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16 makes bf16 matmuls several times faster than fp32 on a CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def available_devices() -> list[str]:
    """The devices this torch build and machine can run on, as `device=` takes them."""
    names = ["cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        names += ["cuda"] + [f"cuda:{i}" for i in range(count)]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device for `device=` (None: cuda where there is one, else cpu). A device this machine lacks is
    refused here, naming what it has, rather than failing deep inside model loading (a torch built without CUDA
    asserts only when weights move)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from e
    if resolved.type not in ("cpu", "cuda", "mps"):  # torch knows "meta", "xpu", ...; no model here runs there
        raise ValueError(f"device={device!r}: models run on 'cpu', 'cuda', 'cuda:N' or 'mps'; available here: "
                         f"{', '.join(available_devices())}")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"device={device!r}: {why}; available: {', '.join(available_devices())}")
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device={device!r}: this machine has {count} CUDA GPU{'s' if count > 1 else ''}; "
                             f"available: {', '.join(available_devices())}")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}: MPS (Apple GPU) is not available here; "
                         f"available: {', '.join(available_devices())}")
    return resolved


def resolve_dtype(dtype, device: torch.device, argument: str = "dtype") -> torch.dtype:
    """The weights dtype for `dtype=` ("auto": bf16 where the device runs it fast); an integer or other dtype no
    model runs in is refused here, not deep inside loading. `argument` names the option in the error."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPE_NAMES:
            raise ValueError(f"{argument}={dtype!r} is not a weights dtype; use 'auto', 'bf16', 'fp16' or 'fp32' "
                             "(or torch.bfloat16, torch.float16, torch.float32)")
        return dtype
    if dtype is None:
        dtype = "auto"
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise ValueError(f"{argument}={dtype!r} is not supported; use one of {sorted(_DTYPES)} or a torch.dtype")
    if dtype != "auto":
        return _DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype: torch.dtype, default: str | None = None) -> str:
    """The short name ('bf16', 'fp16', 'fp32') results and options use for a resolved dtype; `default` for any
    other dtype (without one, such a dtype is an error)."""
    name = DTYPE_NAMES.get(dtype, default)
    if name is None:
        raise ValueError(f"dtype {dtype} has no short name; one of {sorted(DTYPE_NAMES.values())} was expected")
    return name


def compute_dtype_name(module: torch.nn.Module) -> str:
    """The short name of the dtype `module` computes in: its first floating-point parameter's (a 4-bit model's
    unquantized layers hold its compute dtype), read now, as a cast in place changes it. What the caches key on."""
    dtype = next((p.dtype for p in module.parameters() if p.dtype.is_floating_point), torch.float32)
    return dtype_name(dtype, str(dtype).removeprefix("torch."))


def weights_dtype_name(module: torch.nn.Module, default: str | None = None) -> str:
    """`dtype_name` of a module's weights (its first parameter's dtype: a model loads in one)."""
    return dtype_name(next(module.parameters()).dtype, default)
