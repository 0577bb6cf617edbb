"""Noise a user can do nothing about, kept out of their terminal.

transformers draws a "Loading weights" bar for every model it loads; ours load from local files in a fraction of
a second, so each bar is noise (the bundled default loads three models: three bars). Loads by this package run
without them; downloads and GGUF conversions, which take long, keep their bars.

bitsandbytes, where installed (the `[qlora]` extra), is imported by peft's LoRA layers on every adapter load, quantized
or not. At import its CPU backend looks on the hub for a 4-bit kernel and, offline or without the `kernels` package,
logs two warnings ("Failed to load CPU gemm_4bit_forward ... pip install kernels") about a kernel nothing here needs:
its 4-bit layers work without it. Imported first with those two loggers silenced, it prints neither."""
from __future__ import annotations

import functools
import logging
import warnings
from contextlib import contextmanager


def _skip_loading_bars(factory, args, kwargs):
    if kwargs.get("desc") == "Loading weights":
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


@contextmanager
def quiet_weight_loading():
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        hf_logging = None
    set_hook = getattr(hf_logging, "set_tqdm_hook", None)  # absent from older transformers: bars stay
    if set_hook is None:
        yield
        return
    previous = set_hook(_skip_loading_bars)
    try:
        yield
    finally:
        set_hook(previous)


def quietly(function):
    """`function` runs inside `quiet_weight_loading`."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with quiet_weight_loading():
            return function(*args, **kwargs)
    return wrapper


BITSANDBYTES_LOGGERS = ("kernels._internals.hf_hub", "bitsandbytes.backends.cpu.ops")


def import_bitsandbytes():
    """The bitsandbytes module, imported with its kernel-lookup warnings silenced; ImportError where not installed."""
    loggers = [logging.getLogger(name) for name in BITSANDBYTES_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        import bitsandbytes
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return bitsandbytes


def preload_bitsandbytes() -> None:
    """Import bitsandbytes quietly where it is installed, before peft does it loudly."""
    try:
        import_bitsandbytes()
    except ImportError:
        pass


@contextmanager
def peft_loading():
    """PEFT reads `model.is_gradient_checkpointing`, which transformers now deprecates with a FutureWarning per load:
    the user can do nothing about it, so a first run of the bundled default printed it for no reason. bitsandbytes is
    imported quietly first (see above)."""
    preload_bitsandbytes()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        yield
