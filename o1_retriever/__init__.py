"""o1-retriever: a dense retriever that thinks before it embeds (O1 Embedder, arXiv 2502.07555)."""
from .embedder import O1Embedder, QueryEncoding
from .formatting import SPECIAL_TOKENS
from .thinking import GenerationConfig

__version__ = "0.1.0"
__all__ = ["O1Embedder", "QueryEncoding", "GenerationConfig", "SPECIAL_TOKENS", "__version__"]
