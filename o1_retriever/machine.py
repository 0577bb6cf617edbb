"""What a measurement ran on: one description of the machine for every benchmark and evaluation record, so figures
from `bench`, `eval`, the server's load test and the Ray benchmark can be told apart by the machine behind them."""
from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages: on a shared machine they say how busy the other jobs kept the cores."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):  # not on every platform
        return None


def describe() -> dict:
    import torch
    info = {"platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "python": platform.python_version(), "torch": torch.__version__,
            "nice": os.nice(0) if hasattr(os, "nice") else None}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
