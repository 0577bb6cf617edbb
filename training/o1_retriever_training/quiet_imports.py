"""bitsandbytes, where installed (the `[qlora]` extra), is imported by peft's LoRA layers in every run, quantized or
not. At import its CPU backend looks on the hub for a 4-bit kernel and, offline or without the `kernels` package,
logs two warnings ("Failed to load CPU gemm_4bit_forward ... pip install kernels") about a kernel no run here needs:
its 4-bit layers work without it. Imported here first, with those two loggers silenced, the run prints neither."""
from __future__ import annotations

import logging

LOGGERS = ("kernels._internals.hf_hub", "bitsandbytes.backends.cpu.ops")


def import_bitsandbytes():
    """The bitsandbytes module; ImportError where it is not installed."""
    loggers = [logging.getLogger(name) for name in LOGGERS]
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
