"""o1-retriever: a dense retriever that thinks before it embeds (O1 Embedder, arXiv 2502.07555)."""
from .embedder import O1Embedder, QueryEncoding
from .formatting import SPECIAL_TOKENS
from .openai_thinker import OpenAIThinker, RefusedSamplingWarning
from .framework_thinkers import LangChainThinker, LlamaIndexThinker
from .remote_thinking import O1ServerThinker, RepeatedThoughtsWarning
from .thinking import GenerationConfig

__version__ = "0.1.0"
__all__ = ["O1Embedder", "QueryEncoding", "GenerationConfig", "SPECIAL_TOKENS", "O1Index", "Hit",
           "O1EmbeddingFunction", "OpenAIThinker", "O1ServerThinker", "LangChainThinker", "LlamaIndexThinker",
           "RepeatedThoughtsWarning", "RefusedSamplingWarning", "__version__"]
# Imported on first use: they bring in chromadb, which `import o1_retriever` alone does not need.
_LAZY = {"O1Index": ".index", "Hit": ".index", "O1EmbeddingFunction": ".chroma"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
