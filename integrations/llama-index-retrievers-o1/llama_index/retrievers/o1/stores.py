"""What the O1 LlamaIndex retriever needs around its store: the engine it embeds with, the Chroma collection behind
a ChromaVectorStore (its filters, hybrid fusion over its texts), and the nodes it hands back."""
from __future__ import annotations

from typing import Any, List, Optional, Union

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import BasePydanticVectorStore, MetadataFilters, VectorStoreQueryResult
from llama_index.embeddings.o1 import O1Embedding
from o1_retriever import O1Embedder
from o1_retriever.hybrid import CollectionBM25, fuse_with_bm25
from o1_retriever.server.client import RemoteEmbedder

THOUGHTS_KEY = "o1_thoughts"


def chroma_collection(vector_store: BasePydanticVectorStore) -> Any:
    """The chromadb collection behind a `ChromaVectorStore` (its public `client`), or None for any other store."""
    from llama_index.vector_stores.chroma import ChromaVectorStore

    return vector_store.client if isinstance(vector_store, ChromaVectorStore) else None


def resolve_embedder(embedder: Any, model_kwargs: Optional[dict]) -> Union[O1Embedder, RemoteEmbedder]:
    """The engine of an O1Embedder, a RemoteEmbedder (an `o1-retriever serve` server), an O1Embedding (its engine,
    local or served, is shared), or a model path."""
    if isinstance(embedder, O1Embedding):
        embedder = embedder.embedder
    if isinstance(embedder, (O1Embedder, RemoteEmbedder)):
        if model_kwargs:
            raise ValueError("model_kwargs only apply when a model path is given, not an existing embedder")
        return embedder
    if embedder is None or isinstance(embedder, str):
        return O1Embedder.from_pretrained(embedder, **(model_kwargs or {}))
    raise TypeError("embedder must be an O1Embedder, an O1Embedding, a RemoteEmbedder, a model path (str) or None "
                    f"(bundled default), got {type(embedder).__name__}")


def default_thoughts(embedder: Any) -> int:
    """Thoughts per query when none are given: an O1Embedding's own (as its index's retriever thinks), else 3."""
    return embedder.num_thoughts if isinstance(embedder, O1Embedding) else 3


def chroma_where(filters: Optional[MetadataFilters]) -> Optional[dict]:
    """`filters` as ChromaVectorStore sends them to Chroma (its own translation)."""
    if filters is None:
        return None
    from llama_index.vector_stores.chroma.base import _to_chroma_filter
    return _to_chroma_filter(filters)


def checked_filters(filters: Any, vector_store: BasePydanticVectorStore) -> Optional[MetadataFilters]:
    """`filters` as the store will be asked them, checked before any thinking: the type, and for Chroma what Chroma
    refuses (an operator it lacks, such as TEXT_MATCH) through one listing of at most one id. Filters with no
    filter in them admit every node: None, which Chroma takes (it refuses an empty where)."""
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise TypeError("filters must be a llama_index MetadataFilters (MetadataFilters(filters=[MetadataFilter("
                        f"key=..., value=...)])) or None, got {type(filters).__name__}: {filters!r:.80}")
    if not filters.filters:
        return None
    collection = chroma_collection(vector_store)
    if collection is not None:
        try:
            collection.get(where=chroma_where(filters), limit=1, include=[])
        except Exception as e:  # ValueError from the translation or chromadb's, or chromadb's InvalidArgumentError
            raise ValueError(f"filters {filters!r:.200} cannot be searched in Chroma: {e}") from None
    return filters


def fuse_result(bm25: CollectionBM25, query: str, result: VectorStoreQueryResult, dense_weight: float, top_k: int,
                filters: Optional[MetadataFilters]) -> VectorStoreQueryResult:
    """The store's dense hits fused with BM25 over the collection's texts. BM25 sees every text: the filters keep
    what they admit, as on the dense side."""
    nodes = {n.node_id: n for n in result.nodes or []}
    [ranked] = fuse_with_bm25(bm25, [query], [list(zip(nodes, result.similarities or []))], dense_weight, top_k,
                              where=chroma_where(filters))
    fused = [nodes[h.id] if h.text is None else stored_node(h.id, h.text, h.metadata) for h in ranked]
    return VectorStoreQueryResult(nodes=fused, similarities=[h.score for h in ranked], ids=[h.id for h in ranked])


def stored_node(node_id: str, text: str, metadata: dict) -> BaseNode:
    """The node of a hit BM25 alone found, read as ChromaVectorStore reads its own hits: from the node content
    LlamaIndex keeps in the metadata, or, for a collection another tool wrote (O1Index, plain Chroma, LangChain),
    a TextNode of its text, id and metadata."""
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.utils import legacy_metadata_dict_to_node, metadata_dict_to_node
    if "_node_content" in metadata:
        return metadata_dict_to_node(metadata, text)
    metadata, node_info, relationships = legacy_metadata_dict_to_node(metadata)
    return TextNode(text=text or "", id_=node_id, metadata=metadata, start_char_idx=node_info.get("start"),
                    end_char_idx=node_info.get("end"), relationships=relationships)


def with_thoughts(node: BaseNode, thoughts: List[str]) -> BaseNode:
    """A copy (docstores hand out their stored objects) with the thoughts in metadata, hidden from LLMs."""
    node = node.model_copy()
    node.metadata = {**node.metadata, THOUGHTS_KEY: list(thoughts)}
    node.excluded_llm_metadata_keys = [*node.excluded_llm_metadata_keys, THOUGHTS_KEY]
    node.excluded_embed_metadata_keys = [*node.excluded_embed_metadata_keys, THOUGHTS_KEY]
    return node
