from llama_index.embeddings.o1.base import O1Embedding

__all__ = ["O1Embedding"]
