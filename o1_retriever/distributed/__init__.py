"""o1-retriever on Ray Data (`pip install "o1-retriever[ray]"`): corpus encoding into resumable Parquet shards,
query thinking over many queries, and loading the vectors into Chroma, on a local Ray or a cluster.

    from o1_retriever.distributed import encode_corpus, load_into_chroma
    encode_corpus("corpus.jsonl", "vectors/", actors=2)        # a local Ray unless ray.init(address=...) ran
    load_into_chroma("vectors/", path="./db")                  # an ordinary O1 collection

Importing this package does not import Ray; the first call that needs it does (an ImportError with the pip
command when it is missing). Commands: `python -m o1_retriever.distributed encode|think|load|index --help`.
"""
from __future__ import annotations

from .encode import DEFAULT_SHARD_SIZE, EncodeResult, encode_corpus, encode_files, encode_query_file, encode_texts
from .evaluation import ray_corpus_embeddings
from .load import LoadResult, embedder_for, load_into_chroma, read_vectors
from .runtime import INSTALL_HINT, connect, require_ray
from .workers import ModelSpec

__all__ = ["DEFAULT_SHARD_SIZE", "EncodeResult", "INSTALL_HINT", "LoadResult", "ModelSpec", "connect",
           "embedder_for", "encode_corpus", "encode_files", "encode_query_file", "encode_texts", "load_into_chroma",
           "ray_corpus_embeddings", "read_vectors", "require_ray"]
