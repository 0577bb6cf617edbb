"""O1Retriever: a LlamaIndex retriever that thinks, embeds the query with its thoughts, then searches."""
from __future__ import annotations

import asyncio
import uuid

import numpy as np
from typing import Any, List, Optional, Sequence, Union

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, Document, NodeWithScore, QueryBundle
from llama_index.core.storage.docstore.types import BaseDocumentStore
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from llama_index.embeddings.o1 import O1Embedding
from llama_index.embeddings.o1.base import embed_queries_with_events
from o1_retriever import O1Embedder
from o1_retriever.chroma import check_model, model_record, num_thoughts_arg, open_collection
from o1_retriever.fusion import resolve_hybrid
from o1_retriever.hybrid import CollectionBM25, dense_pool
from o1_retriever.server.client import RemoteEmbedder
from o1_retriever.validation import check_positive_int

from llama_index.retrievers.o1.copying import SharedOnCopy
from llama_index.retrievers.o1.stores import (
    THOUGHTS_KEY,  # noqa: F401  (importable from here, where it was first defined)
    checked_filters,
    chroma_collection,
    default_thoughts,
    fuse_result,
    resolve_embedder,
    with_thoughts,
)


class O1Retriever(SharedOnCopy, BaseRetriever):
    """Retrieve from any LlamaIndex vector store with thinking query embeddings.

    Names: `similarity_top_k` is nodes per query (LlamaIndex's word), `num_thoughts` thoughts per query (`k`, its
    older name, still works with a DeprecationWarning).

    For each query the model writes `num_thoughts` thoughts, embeds `query + thought` for each, averages, and
    asks the store for the `similarity_top_k` nearest nodes. Each returned node carries the thoughts
    in `metadata["o1_thoughts"]` (hidden from the LLM and from embedding); `last_thoughts` holds them
    too. The store must hold document vectors from the same model (`O1Embedding`).

    `hybrid=True` (or a dense share in [0, 1]) fuses the thinking search with BM25 over the store's texts
    (z-scored scores, `o1_retriever.fusion`); it needs a Chroma-backed store, which lists its texts. With other
    retrievers in a `QueryFusionRetriever`, pass `attach_thoughts=False`: LlamaIndex de-duplicates fused nodes
    by a hash of text *and* metadata, so nodes carrying thoughts would never merge with the same passage.
    """

    def __init__(self, vector_store: BasePydanticVectorStore, embedder: Any = None, *,
                 similarity_top_k: int = 10, num_thoughts: Optional[int] = None,
                 filters: Optional[MetadataFilters] = None,
                 docstore: Optional[BaseDocumentStore] = None, model_kwargs: Optional[dict] = None,
                 attach_thoughts: bool = True, hybrid: Any = None,
                 callback_manager: Optional[CallbackManager] = None, verbose: bool = False,
                 k: Optional[int] = None) -> None:
        if not isinstance(vector_store, BasePydanticVectorStore):
            raise TypeError(
                "vector_store must be a LlamaIndex BasePydanticVectorStore (e.g. "
                "llama_index.vector_stores.chroma.ChromaVectorStore(chroma_collection=...)), "
                f"got {type(vector_store).__module__}.{type(vector_store).__name__}")
        if not vector_store.stores_text and docstore is None:
            raise ValueError(f"{type(vector_store).__name__} keeps no node text; pass the index's docstore too "
                             "(or use O1Retriever.from_index(index))")
        self._similarity_top_k = check_positive_int(similarity_top_k, "similarity_top_k")
        self._k = num_thoughts_arg(num_thoughts, k, "O1Retriever", default=default_thoughts(embedder))
        if not isinstance(attach_thoughts, bool):
            raise TypeError(f"attach_thoughts must be True or False, got {attach_thoughts!r}")
        self._vector_store, self._docstore = vector_store, docstore
        self._filters = checked_filters(filters, vector_store)  # else a bad one fails only after thinking
        self._attach_thoughts = attach_thoughts
        self._hybrid = resolve_hybrid(hybrid)
        collection = chroma_collection(vector_store)
        if self._hybrid is not None and collection is None:
            raise ValueError(f"hybrid search needs a store that lists its texts (ChromaVectorStore); "
                             f"{type(vector_store).__name__} does not. Fuse with a BM25Retriever in a "
                             "QueryFusionRetriever instead (see the README)")
        self._bm25 = CollectionBM25(collection) if self._hybrid is not None else None  # BM25 over its texts
        self._embedder = resolve_embedder(embedder, model_kwargs)
        record = model_record(collection) if collection is not None else None
        if record is not None:  # the collection names its model: another one is refused, as O1Index does
            check_model(f"collection {collection.name!r}", record, self._embedder)
        self.last_thoughts: List[str] = []
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    # ---- constructors -------------------------------------------------------------------------
    @classmethod
    def from_documents(cls, documents: Sequence[Document], embedder: Any = None, *, similarity_top_k: int = 10,
                       num_thoughts: Optional[int] = None, k: Optional[int] = None,
                       persist_dir: Optional[str] = None, collection_name: Optional[str] = None,
                       transformations: Optional[list] = None, show_progress: bool = False,
                       model_kwargs: Optional[dict] = None, **kwargs: Any) -> "O1Retriever":
        """Embed `documents` into a Chroma collection (in memory, or persistent under `persist_dir`)."""
        import chromadb
        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.vector_stores.chroma import ChromaVectorStore

        check_positive_int(similarity_top_k, "similarity_top_k")
        n = num_thoughts_arg(num_thoughts, k, "O1Retriever.from_documents", default=default_thoughts(embedder))
        engine = resolve_embedder(embedder, model_kwargs)
        if persist_dir is not None:
            client = chromadb.PersistentClient(path=str(persist_dir))
            collection_name = collection_name or "o1_retriever"
        else:  # in-memory clients share one process-wide store: a fresh name keeps indexes apart
            client = chromadb.EphemeralClient()
            collection_name = collection_name or f"o1_retriever_{uuid.uuid4().hex[:12]}"
        # One contract with O1Index and plain Chroma: the collection records the O1 function (plain `query_texts`
        # thinks), and reopening it with another model is refused.
        collection = open_collection(client, collection_name, engine, num_thoughts=n)
        vector_store = ChromaVectorStore(chroma_collection=collection)
        try:  # every setting is checked (an unknown one refused) before any document is embedded
            retriever = cls(vector_store, engine, similarity_top_k=similarity_top_k, num_thoughts=n, **kwargs)
        except Exception:
            if persist_dir is None:  # the empty in-memory collection made for it
                client.delete_collection(collection_name)
            raise
        VectorStoreIndex.from_documents(
            documents, storage_context=StorageContext.from_defaults(vector_store=vector_store),
            embed_model=O1Embedding(embedder=engine, num_thoughts=n), transformations=transformations,
            show_progress=show_progress)
        return retriever

    @classmethod
    def from_index(cls, index: Any, embedder: Any = None, **kwargs: Any) -> "O1Retriever":
        """Wrap a `VectorStoreIndex`; its `O1Embedding` is reused when no embedder is given."""
        from llama_index.core import VectorStoreIndex

        if not isinstance(index, VectorStoreIndex):
            raise TypeError(f"index must be a llama_index VectorStoreIndex, got {type(index).__name__}")
        if embedder is None:
            embedder = index._embed_model
            if not isinstance(embedder, O1Embedding):
                raise ValueError(f"the index embeds with {type(embedder).__name__}, not O1Embedding: "
                                 "pass the O1 embedder that built it")
        return cls(index.vector_store, embedder, docstore=index.docstore, **kwargs)

    @property
    def embedder(self) -> Union[O1Embedder, RemoteEmbedder]:
        return self._embedder

    @property
    def vector_store(self) -> BasePydanticVectorStore:
        return self._vector_store

    @property
    def similarity_top_k(self) -> int:
        """Nodes returned per query; settable, as on LlamaIndex's VectorIndexRetriever."""
        return self._similarity_top_k

    @similarity_top_k.setter
    def similarity_top_k(self, similarity_top_k: int) -> None:
        self._similarity_top_k = check_positive_int(similarity_top_k, "similarity_top_k")

    @property
    def num_thoughts(self) -> int:
        """Thoughts written per query (0: the bare query is embedded); settable."""
        return self._k

    @num_thoughts.setter
    def num_thoughts(self, num_thoughts: int) -> None:
        self._k = num_thoughts_arg(num_thoughts, None, "O1Retriever")

    @property
    def filters(self) -> Optional[MetadataFilters]:
        """The metadata filters every search applies; settable (None: none)."""
        return self._filters

    @filters.setter
    def filters(self, filters: Optional[MetadataFilters]) -> None:
        self._filters = checked_filters(filters, self._vector_store)

    # ---- retrieval ----------------------------------------------------------------------------
    def _embed(self, query_bundle: QueryBundle) -> tuple[list, List[str]]:
        """The query vector and its thoughts. As LlamaIndex's own retrievers do, `custom_embedding_strs` (what
        HyDEQueryTransform writes) are embedded instead of the query string, each as a query, and averaged;
        the thoughts of all of them are kept. The framework's embedding events fire, with the thoughts."""
        if query_bundle.embedding is not None:  # the caller embedded it already: respect that
            return list(query_bundle.embedding), []
        texts = [t for t in query_bundle.embedding_strs if isinstance(t, str) and t.strip()] or [query_bundle.query_str]
        model_dict = {"class_name": type(self).__name__, "model_name": self._embedder.name, "num_thoughts": self._k}
        vectors, thoughts = embed_queries_with_events(self._embedder, texts, self._k, self.callback_manager, model_dict)
        if len(vectors) == 1:
            return vectors[0], thoughts[0]
        return np.mean(np.asarray(vectors), axis=0).tolist(), [t for own in thoughts for t in own]

    def _prepare(self, query_bundle: QueryBundle) -> tuple[Optional[MetadataFilters], list, List[str]]:
        # The filters are checked again first: a MetadataFilters changed in place since it was set would otherwise
        # fail in the store, after the thinking.
        filters = checked_filters(self._filters, self._vector_store)
        return (filters, *self._embed(query_bundle))

    def _query(self, query_bundle: QueryBundle, embedding: list,
               filters: Optional[MetadataFilters]) -> VectorStoreQuery:
        top_k = self._similarity_top_k if self._hybrid is None else dense_pool(self._similarity_top_k)
        return VectorStoreQuery(query_embedding=embedding, similarity_top_k=top_k,
                                filters=filters, query_str=query_bundle.query_str)

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        filters, embedding, thoughts = self._prepare(query_bundle)
        result = self._vector_store.query(self._query(query_bundle, embedding, filters))
        if self._hybrid is not None:
            result = fuse_result(self._bm25, query_bundle.query_str, result, self._hybrid, self._similarity_top_k,
                                 filters)
        return self._to_nodes(result, thoughts)

    async def _aretrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        # Thinking is seconds of generation (and the filter check a Chroma read): keep them off the event loop.
        filters, embedding, thoughts = await asyncio.to_thread(self._prepare, query_bundle)
        query = self._query(query_bundle, embedding, filters)
        if type(self._vector_store).aquery is BasePydanticVectorStore.aquery:  # the base's aquery calls query() inline
            result = await asyncio.to_thread(self._vector_store.query, query)
        else:  # the store's own async query
            result = await self._vector_store.aquery(query)
        if self._hybrid is not None:  # BM25 and Chroma's listing are synchronous: a worker thread too
            result = await asyncio.to_thread(fuse_result, self._bm25, query_bundle.query_str, result, self._hybrid,
                                            self._similarity_top_k, filters)
        if not result.nodes and result.ids:  # a store that keeps no text: the docstore's own async read, as
            # VectorIndexRetriever does (a remote docstore's lookup would otherwise hold the event loop)
            result.nodes = await self._docstore.aget_nodes(list(result.ids))
        return self._to_nodes(result, thoughts)

    def _to_nodes(self, result: VectorStoreQueryResult, thoughts: List[str]) -> List[NodeWithScore]:
        self.last_thoughts = thoughts
        nodes: Sequence[BaseNode] = result.nodes or []
        if not nodes and result.ids:
            nodes = self._docstore.get_nodes(list(result.ids))
        scores = list(result.similarities or [None] * len(nodes))
        if not self._attach_thoughts:
            return [NodeWithScore(node=node.model_copy(), score=score) for node, score in zip(nodes, scores)]
        return [NodeWithScore(node=with_thoughts(node, thoughts), score=score) for node, score in zip(nodes, scores)]

