"""`o1-retriever serve`: one warm embedder behind an OpenAI-compatible HTTP API, with dynamic batching; and
`RemoteEmbedder`, the client that answers O1Embedder's calls from such a server.

Needs the `serve` extra (`pip install "o1-retriever[serve]"`) to serve; importing this package alone does not, and
the client needs only httpx (a chromadb dependency).
"""
from __future__ import annotations


def create_app(embedder, **options):
    """See `o1_retriever.server.app.create_app` (imported lazily: FastAPI is an optional extra)."""
    from .app import create_app as build
    return build(embedder, **options)


# Imported on first use: `import o1_retriever.server` stays cheap and never needs the serve extra.
_LAZY = {"RemoteEmbedder": ".client", "O1ServerError": ".client", "BackgroundServer": ".background"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app", "RemoteEmbedder", "O1ServerError", "BackgroundServer"]
