from llama_index.retrievers.o1.base import O1Retriever

__all__ = ["O1Retriever"]
