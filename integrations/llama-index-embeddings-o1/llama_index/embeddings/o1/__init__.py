from llama_index.embeddings.o1.base import O1Embedding, O1ThoughtsEvent

__all__ = ["O1Embedding", "O1ThoughtsEvent"]
