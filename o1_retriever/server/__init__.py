"""`o1-retriever serve`: one warm embedder behind an OpenAI-compatible HTTP API, with dynamic batching.

Needs the `serve` extra (`pip install "o1-retriever[serve]"`); importing this package alone does not.
"""
from __future__ import annotations


def create_app(embedder, **options):
    """See `o1_retriever.server.app.create_app` (imported lazily: FastAPI is an optional extra)."""
    from .app import create_app as build
    return build(embedder, **options)


__all__ = ["create_app"]
