"""O1Retriever: a LangChain retriever that thinks, embeds the query with its thoughts, then searches."""
from __future__ import annotations

import uuid
from typing import Any, Optional, Union

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from o1_retriever import QueryEncoding
from o1_retriever.chroma import check_model, model_record, num_thoughts_arg
from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT, resolve_hybrid
from o1_retriever.hybrid import CollectionBM25, dense_pool, fuse_with_bm25
from o1_retriever.validation import as_text_list, check_choice, check_positive_int
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from langchain_o1.embeddings import O1Embeddings

THOUGHTS_KEY = "o1_thoughts"
THOUGHTS_EVENT = "o1_thoughts"  # custom callback event each retrieval emits: {"query", "thoughts", "num_thoughts"}
# VectorStore.as_retriever's search types that take a query vector; "similarity_score_threshold" has no by-vector
# method on a VectorStore, so it is refused rather than half-done.
SEARCH_TYPES = ("similarity", "mmr")
MMR_ARGS = ("fetch_k", "lambda_mult")


def _chroma_collection(store: VectorStore) -> Any:
    """The chromadb collection behind a `langchain_chroma.Chroma` (its `_collection`: LangChain has no public
    accessor), or None. Only a real chromadb `Collection` counts: another store's `_collection` may have
    `count`/`get` methods that mean something else."""
    try:
        from chromadb.api.models.Collection import Collection
    except ImportError:  # no chromadb, so no Chroma store
        return None
    collection = getattr(store, "_collection", None)
    return collection if isinstance(collection, Collection) else None


class O1Retriever(BaseRetriever):
    """Search any LangChain `VectorStore` with thinking query embeddings.

    The store must hold document vectors from the same model (e.g. `Chroma(embedding_function=
    O1Embeddings(...))`); when `embeddings` is not given, the store's own `O1Embeddings` is used.
    Each returned `Document` carries the thoughts in `metadata["o1_thoughts"]`, and each retrieval sends them to
    the callback handlers as a custom event named "o1_thoughts" (`astream_events` shows it too).

    Names: `k` is LangChain's documents per query (field, `search_kwargs={"k": ...}` or `invoke(..., k=...)`, in
    that order of precedence: call, search_kwargs, field); thoughts per query are `num_thoughts`.

        retriever = O1Retriever(vectorstore=store, k=4, num_thoughts=3)
        docs = retriever.invoke("what causes diabetes?", k=2)  # k per call overrides the default

    `hybrid=True` (or a dense share in [0, 1]) fuses the thinking search with BM25 over the store's texts by
    z-scored scores (`o1_retriever.fusion`); it needs a store that lists its texts and scores vector hits
    (`langchain_chroma.Chroma`). LangChain's EnsembleRetriever fuses by reciprocal rank instead, which fell
    below BM25 alone on our held-out data.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    vectorstore: VectorStore = Field(description="Any LangChain vector store holding O1 document vectors.")
    embeddings: Optional[O1Embeddings] = Field(default=None, description="Defaults to the store's embeddings.")
    k: int = Field(default=4, description="Documents returned per query.")
    num_thoughts: Optional[int] = Field(default=None, description="Thoughts per query; None: the embeddings' own.")
    search_type: str = Field(default="similarity", description="'similarity', or 'mmr': maximal marginal relevance "
                                                               "around the thinking vector (search_kwargs fetch_k, "
                                                               "lambda_mult), as in VectorStore.as_retriever.")
    search_kwargs: dict[str, Any] = Field(default_factory=dict,
                                          description="Extra arguments for the store's search (e.g. filter).")
    hybrid: Optional[Union[bool, float]] = Field(
        default=None, description=f"Fuse with BM25 over the store's texts: the dense share (True: "
                                  f"{DEFAULT_DENSE_WEIGHT}, chosen on held-out data); None or False: dense only.")
    _bm25: Any = PrivateAttr(default=None)  # CollectionBM25 over the store's texts, when hybrid
    # (query, thoughts) -> QueryEncoding, filled by batch/abatch with one batched encode_queries call
    _prefetched: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _check_store_type(cls, values: Any) -> Any:
        store = values.get("vectorstore") if isinstance(values, dict) else None
        if store is not None and not isinstance(store, VectorStore):
            raise TypeError("vectorstore must be a LangChain VectorStore (e.g. langchain_chroma.Chroma), "
                            f"got {type(store).__module__}.{type(store).__name__}")
        return values

    @field_validator("k", mode="before")  # before pydantic's coercion: k=True or k="3" is a mistake, not 1 or 3
    @classmethod
    def _check_k(cls, k: int) -> int:
        return check_positive_int(k, "k")

    @field_validator("num_thoughts", mode="before")  # before coercion, as k: num_thoughts=True is not 1
    @classmethod
    def _check_num_thoughts(cls, n: Any) -> Optional[int]:
        return None if n is None else num_thoughts_arg(n, None, "O1Retriever")

    @field_validator("search_type")
    @classmethod
    def _check_search_type(cls, search_type: str) -> str:
        return check_choice(search_type, "search_type", SEARCH_TYPES)

    @field_validator("hybrid", mode="before")
    @classmethod
    def _check_hybrid(cls, w: Any) -> Optional[float]:
        return resolve_hybrid(w)

    @model_validator(mode="after")
    def _check_search_kwargs(self) -> "O1Retriever":
        self._options(None, {})  # a wrong search_kwargs fails when the retriever is built, not after thinking
        return self

    @model_validator(mode="after")
    def _hybrid_needs_a_listing_store(self) -> "O1Retriever":
        if self.hybrid is None:
            return self
        if self.search_type != "similarity":
            raise ValueError(f"hybrid search fuses similarity hits with BM25; search_type={self.search_type!r} "
                             "cannot be fused: leave search_type at 'similarity' or hybrid at None")
        collection = _chroma_collection(self.vectorstore)
        scores = callable(getattr(self.vectorstore, "similarity_search_by_vector_with_relevance_scores", None))
        if collection is None or not scores:
            raise ValueError(f"hybrid search needs a store that lists its texts and scores vector hits "
                             f"(langchain_chroma.Chroma); {type(self.vectorstore).__name__} does not")
        self._bm25 = CollectionBM25(collection)
        return self

    @model_validator(mode="after")
    def _find_embeddings(self) -> "O1Retriever":
        if self.embeddings is None:
            own = getattr(self.vectorstore, "embeddings", None)
            if not isinstance(own, O1Embeddings):
                raise ValueError(f"{type(self.vectorstore).__name__} does not embed with O1Embeddings; "
                                 "pass embeddings=O1Embeddings(...) (the model that embedded its documents)")
            self.embeddings = own
        return self

    @model_validator(mode="after")
    def _same_model_as_the_collection(self) -> "O1Retriever":
        # A Chroma collection that records its O1 model (made by O1Index, plain Chroma with O1EmbeddingFunction,
        # LlamaIndex, or here with O1Embeddings.collection_configuration()) refuses another one, as everywhere.
        collection = _chroma_collection(self.vectorstore)
        record = model_record(collection) if collection is not None else None
        if record is not None:
            check_model(f"collection {collection.name!r}", record, self.embeddings.embedder)
        return self

    @classmethod
    def from_texts(cls, texts: list[str], embeddings: Optional[O1Embeddings] = None, *,
                   metadatas: Optional[list[dict]] = None, ids: Optional[list[str]] = None,
                   persist_directory: Optional[str] = None, collection_name: Optional[str] = None,
                   **kwargs: Any) -> "O1Retriever":
        """Embed `texts` into a new `langchain_chroma.Chroma` collection (in memory, or under `persist_directory`)
        that records the O1 model, and search it; `kwargs` are the retriever's fields (k, num_thoughts, hybrid, ...).
        `embeddings` None loads the bundled default."""
        unknown = sorted(set(kwargs) - set(cls.model_fields) - {"vectorstore", "embeddings"})
        if unknown:  # said before any text is embedded
            raise TypeError(f"unknown O1Retriever field(s) {unknown}; fields: {sorted(cls.model_fields)}")
        try:
            from langchain_chroma import Chroma
        except ImportError as e:
            raise ImportError('O1Retriever.from_texts needs langchain-chroma: pip install -e '
                              '"integrations/langchain-o1[chroma]"') from e
        embeddings = O1Embeddings() if embeddings is None else embeddings
        if collection_name is None:  # in-memory Chroma clients share one store: a fresh name keeps retrievers apart
            collection_name = "o1_retriever" if persist_directory else f"o1_retriever_{uuid.uuid4().hex[:12]}"
        store = Chroma.from_texts(list(texts), embedding=embeddings, metadatas=metadatas, ids=ids,
                                  collection_name=collection_name, persist_directory=persist_directory,
                                  collection_configuration=embeddings.collection_configuration())
        return cls(vectorstore=store, embeddings=embeddings, **kwargs)

    @classmethod
    def from_documents(cls, documents: list[Document], embeddings: Optional[O1Embeddings] = None,
                       **kwargs: Any) -> "O1Retriever":
        """`from_texts` over `Document`s: their text, metadata and ids (when every document has one)."""
        documents = list(documents)
        ids = [d.id for d in documents] if all(d.id for d in documents) else None
        return cls.from_texts([d.page_content for d in documents], embeddings,
                              metadatas=[d.metadata for d in documents], ids=ids, **kwargs)

    def _thoughts(self) -> int:
        return self.embeddings.num_thoughts if self.num_thoughts is None else self.num_thoughts

    def _search(self, query: str, k: Optional[int]) -> tuple[list[float], list[str], int]:
        if not isinstance(query, str):  # a chain's dict reaching the retriever: say so, not "unhashable type"
            raise TypeError(f"query must be a str, got {type(query).__name__}: {query!r:.80}")
        k = self.k if k is None else check_positive_int(k, "k")
        encoding = self._prefetched.get((query, self._thoughts()))
        if encoding is None:
            encoding = self.embeddings.embed_query_with_thoughts(query, self.num_thoughts)
        return encoding.embeddings.tolist(), list(encoding.thoughts), k

    def _prefetch(self, inputs: list) -> list:
        """Think about every query of a batch in one `encode_queries` call (batched generation is several times
        faster per query than one query per thread); each query's thoughts are its own, as with `invoke`."""
        # A bad query is left to its own call, which fails alone with its own error (return_exceptions=True holds)
        queries = sorted({q for q in inputs if _valid_query(q)})
        n = self._thoughts()
        todo = [q for q in queries if (q, n) not in self._prefetched]
        if len(todo) > 1:
            encoding = self.embeddings.embedder.encode_queries(todo, k=n, batch_size=self.embeddings.batch_size,
                                                               show_progress_bar=self.embeddings.show_progress,
                                                               return_thoughts=True)
            for i, q in enumerate(todo):
                self._prefetched[(q, n)] = QueryEncoding(encoding.embeddings[i], encoding.thoughts[i])
        return [(q, n) for q in todo]

    def _forget(self, keys: list) -> None:
        for key in keys:  # another batch may still read one: it then thinks again, with the same result
            self._prefetched.pop(key, None)

    def batch(self, inputs: list, config: Any = None, **kwargs: Any) -> list:
        keys = self._prefetch(inputs)
        try:
            return super().batch(inputs, config, **kwargs)
        finally:
            self._forget(keys)

    async def abatch(self, inputs: list, config: Any = None, **kwargs: Any) -> list:
        keys = await run_in_executor(None, self._prefetch, inputs)
        try:
            return await super().abatch(inputs, config, **kwargs)
        finally:
            self._forget(keys)

    def _options(self, k: Optional[int], kwargs: dict) -> tuple[int, dict]:
        """(documents to return, store arguments). `k` is LangChain's documents-per-query everywhere: a call's `k`,
        else `search_kwargs["k"]` (as in `vectorstore.as_retriever(search_kwargs={"k": 5})`), else the field."""
        store_kwargs = {**self.search_kwargs, **kwargs}
        if "num_thoughts" in store_kwargs:
            raise TypeError("num_thoughts is a field of O1Retriever (or O1Embeddings), not a search argument: "
                            "O1Retriever(vectorstore=..., num_thoughts=3)")
        # Arguments of another search type would reach the store and fail there with its own words (chromadb:
        # "Collection.query() got an unexpected keyword argument").
        if "score_threshold" in store_kwargs:
            raise ValueError(f"score_threshold is an argument of search_type='similarity_score_threshold', which "
                             f"O1Retriever does not have; use one of {list(SEARCH_TYPES)}")
        key = next((key for key in MMR_ARGS if key in store_kwargs), None)
        if key is not None and self.search_type != "mmr":
            raise ValueError(f"{key} is an argument of search_type='mmr'; this retriever's search_type is "
                             f"{self.search_type!r}: O1Retriever(..., search_type='mmr')")
        from_kwargs = store_kwargs.pop("k", self.k)
        return check_positive_int(from_kwargs if k is None else k, "k"), store_kwargs

    def _thoughts_event(self, query: str, thoughts: list[str]) -> dict:
        # LangChain has no embedding callback: the thoughts go to the handlers (and astream_events) as a custom event
        # of this retriever's run, so tracing shows what the model thought before it searched.
        return {"query": query, "thoughts": list(thoughts), "num_thoughts": self._thoughts()}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: Optional[int] = None, **kwargs: Any) -> list[Document]:
        k, store_kwargs = self._options(k, kwargs)
        vector, thoughts, _ = self._search(query, k)
        run_manager.get_child().on_custom_event(THOUGHTS_EVENT, self._thoughts_event(query, thoughts),
                                                run_id=run_manager.run_id)
        if self.hybrid is not None:
            return _with_thoughts(self._hybrid_search(query, vector, k, store_kwargs), thoughts)
        if self.search_type == "mmr":
            docs = self.vectorstore.max_marginal_relevance_search_by_vector(vector, k=k, **store_kwargs)
        else:
            docs = self.vectorstore.similarity_search_by_vector(vector, k=k, **store_kwargs)
        return _with_thoughts(docs, thoughts)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: Optional[int] = None, **kwargs: Any) -> list[Document]:
        k, store_kwargs = self._options(k, kwargs)
        # Thinking is seconds of generation: keep it off the event loop.
        vector, thoughts, _ = await run_in_executor(None, self._search, query, k)
        await run_manager.get_child().on_custom_event(
            THOUGHTS_EVENT, self._thoughts_event(query, thoughts), run_id=run_manager.run_id)
        if self.hybrid is not None:  # BM25 and the store's listing are synchronous: a worker thread too
            docs = await run_in_executor(None, self._hybrid_search, query, vector, k, store_kwargs)
            return _with_thoughts(docs, thoughts)
        if self.search_type == "mmr":
            docs = await self.vectorstore.amax_marginal_relevance_search_by_vector(vector, k=k, **store_kwargs)
        else:
            docs = await self.vectorstore.asimilarity_search_by_vector(vector, k=k, **store_kwargs)
        return _with_thoughts(docs, thoughts)

    def _hybrid_search(self, query: str, vector: list[float], k: int, kwargs: dict) -> list[Document]:
        scored = self.vectorstore.similarity_search_by_vector_with_relevance_scores(vector, k=dense_pool(k), **kwargs)
        # Chroma returns distances; cosine, squared-L2 and inner-product distances of unit vectors are all linear
        # in the cosine, and z-scores do not see a linear map: the negated distance ranks exactly as the cosine.
        found = {d.id: d for d, _ in scored}
        # BM25 sees every text: the filter keeps what it admits, as it does on the dense side
        [ranked] = fuse_with_bm25(self._bm25, [query], [[(d.id, -dist) for d, dist in scored]], self.hybrid, k,
                                  where=kwargs.get("filter"), where_document=kwargs.get("where_document"))
        return [found[h.id] if h.text is None else Document(page_content=h.text, metadata=h.metadata, id=h.id)
                for h in ranked]


def _valid_query(query: Any) -> bool:
    try:
        as_text_list(query, "query")
    except (TypeError, ValueError):
        return False
    return isinstance(query, str)


def _with_thoughts(docs: list[Document], thoughts: list[str]) -> list[Document]:
    return [Document(page_content=d.page_content, metadata={**d.metadata, THOUGHTS_KEY: list(thoughts)}, id=d.id)
            for d in docs]
