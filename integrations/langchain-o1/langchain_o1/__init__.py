"""LangChain integration for o1-retriever: embeddings and a retriever that think before they embed."""
from importlib import metadata

from langchain_o1.embeddings import O1Embeddings
from langchain_o1.retrievers import O1Retriever

try:
    __version__ = metadata.version(__package__)
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = ""
del metadata

__all__ = ["O1Embeddings", "O1Retriever", "__version__"]
