"""The server's dependencies are an optional extra: import them lazily, and say how to install them."""
from __future__ import annotations

import importlib

INSTALL = 'pip install "o1-retriever[serve]"'


def require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"`o1-retriever serve` needs {module.split('.')[0]!r}, which is not installed: "
                          f"run {INSTALL}") from e
