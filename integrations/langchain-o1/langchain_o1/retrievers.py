"""O1Retriever: a LangChain retriever that thinks, embeds the query with its thoughts, then searches."""
from __future__ import annotations

from typing import Any, Optional, Union

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from o1_retriever.chroma import check_model, model_record, num_thoughts_arg
from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT, resolve_hybrid
from o1_retriever.hybrid import CollectionBM25
from o1_retriever.validation import check_choice, check_positive_int
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from langchain_o1.batching import BatchedThinking
from langchain_o1.copying import SharedOnCopy
from langchain_o1.embeddings import O1Embeddings
from langchain_o1.store_search import (
    SEARCH_TYPES,
    THOUGHTS_KEY,  # noqa: F401  (importable from here, where it was first defined)
    check_filters,
    add_texts,
    chroma_collection,
    hybrid_search,
    new_chroma,
    search_options,
    with_thoughts,
)

THOUGHTS_EVENT = "o1_thoughts"  # custom callback event each retrieval emits: {"query", "thoughts", "num_thoughts"}


class O1Retriever(BatchedThinking, SharedOnCopy, BaseRetriever):
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

    # validate_assignment: `retriever.k = 0` or `retriever.search_kwargs = {...}` is checked as the constructor checks
    # it (and undone when refused), not found out inside a search after seconds of thinking
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_assignment=True)

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
    _pending: dict = PrivateAttr(default_factory=dict)  # see BatchedThinking

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
    def _hybrid_needs_a_listing_store(self) -> "O1Retriever":
        if self.hybrid is None:
            self._bm25 = None
            return self
        if self.search_type != "similarity":
            raise ValueError(f"hybrid search fuses similarity hits with BM25; search_type={self.search_type!r} "
                             "cannot be fused: leave search_type at 'similarity' or hybrid at None")
        collection = chroma_collection(self.vectorstore)
        scores = callable(getattr(self.vectorstore, "similarity_search_by_vector_with_relevance_scores", None))
        if collection is None or not scores:
            raise ValueError(f"hybrid search needs a store that lists its texts and scores vector hits "
                             f"(langchain_chroma.Chroma); {type(self.vectorstore).__name__} does not")
        if self._bm25 is None or self._bm25.collection is not collection:  # keep the BM25 built so far
            self._bm25 = CollectionBM25(collection)
        return self

    @model_validator(mode="after")
    def _check_search_kwargs(self) -> "O1Retriever":
        self._options(None, {})  # a wrong search_kwargs fails when the retriever is built, not after thinking
        check_filters(self.vectorstore, self.search_kwargs)
        return self

    @model_validator(mode="after")
    def _find_embeddings(self) -> "O1Retriever":
        # embeddings never given are the store's: a store assigned later brings its own
        if self.embeddings is None or "embeddings" not in self.model_fields_set:
            own = getattr(self.vectorstore, "embeddings", None)
            if not isinstance(own, O1Embeddings):
                raise ValueError(f"{type(self.vectorstore).__name__} does not embed with O1Embeddings; "
                                 "pass embeddings=O1Embeddings(...) (the model that embedded its documents)")
            self.__dict__["embeddings"] = own  # not through __setattr__: that would validate the model again
        return self

    @model_validator(mode="after")
    def _same_model_as_the_collection(self) -> "O1Retriever":
        # A Chroma collection that records its O1 model (made by O1Index, plain Chroma with O1EmbeddingFunction,
        # LlamaIndex, or here with O1Embeddings.collection_configuration()) refuses another one, as everywhere.
        collection = chroma_collection(self.vectorstore)
        record = model_record(collection) if collection is not None else None
        if record is not None:
            check_model(f"collection {collection.name!r}", record, self.embeddings.embedder)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        # Pydantic runs the model's "after" validators once the new value is in place, and leaves it there when one
        # refuses it: a refused assignment puts the fields back as they were.
        if name not in type(self).model_fields:
            return super().__setattr__(name, value)
        fields, fields_set, bm25 = self.__dict__, set(self.__pydantic_fields_set__), self._bm25
        try:
            super().__setattr__(name, value)
        except Exception:
            object.__setattr__(self, "__dict__", fields)
            object.__setattr__(self, "__pydantic_fields_set__", fields_set)
            self._bm25 = bm25
            raise

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
        embeddings = O1Embeddings() if embeddings is None else embeddings
        store = new_chroma(embeddings, persist_directory, collection_name)
        try:  # every setting is checked before any text is embedded
            retriever = cls(vectorstore=store, embeddings=embeddings, **kwargs)
        except Exception:
            if collection_name is None and persist_directory is None:  # the empty collection made for it
                store.delete_collection()
            raise
        add_texts(store, texts, metadatas, ids)
        return retriever

    @classmethod
    def from_documents(cls, documents: list[Document], embeddings: Optional[O1Embeddings] = None, *,
                       ids: Optional[list[str]] = None, **kwargs: Any) -> "O1Retriever":
        """`from_texts` over `Document`s: their text, metadata and ids (`ids`, else each document's own; Chroma
        names a document that has none), as `Chroma.from_documents` keeps them."""
        documents = list(documents)
        ids = [d.id for d in documents] if ids is None else ids
        return cls.from_texts([d.page_content for d in documents], embeddings,
                              metadatas=[d.metadata for d in documents], ids=ids, **kwargs)

    def _thoughts(self) -> int:
        return self.embeddings.num_thoughts if self.num_thoughts is None else self.num_thoughts

    def _search(self, query: str, store_kwargs: dict) -> tuple[list[float], list[str]]:
        if not isinstance(query, str):  # a chain's dict reaching the retriever: say so, not "unhashable type"
            raise TypeError(f"query must be a str, got {type(query).__name__}: {query!r:.80}")
        # every call: a filter dict in search_kwargs may have been changed in place since it was checked
        check_filters(self.vectorstore, store_kwargs)
        encoding = self._encoding(query)
        if encoding is None:
            encoding = self.embeddings.embed_query_with_thoughts(query, self.num_thoughts)
        return encoding.embeddings.tolist(), list(encoding.thoughts)

    def _options(self, k: Optional[int], kwargs: dict) -> tuple[int, dict]:
        """(documents to return, store arguments): see `store_search.search_options`."""
        return search_options(self.vectorstore, self.search_type, self.hybrid, self.k, self.search_kwargs, k, kwargs)

    def _thoughts_event(self, query: str, thoughts: list[str]) -> dict:
        # LangChain has no embedding callback: the thoughts go to the handlers (and astream_events) as a custom event
        # of this retriever's run, so tracing shows what the model thought before it searched.
        return {"query": query, "thoughts": list(thoughts), "num_thoughts": self._thoughts()}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: Optional[int] = None, **kwargs: Any) -> list[Document]:
        k, store_kwargs = self._options(k, kwargs)
        vector, thoughts = self._search(query, store_kwargs)
        run_manager.get_child().on_custom_event(THOUGHTS_EVENT, self._thoughts_event(query, thoughts),
                                                run_id=run_manager.run_id)
        if self.hybrid is not None:
            docs = hybrid_search(self.vectorstore, self._bm25, query, vector, k, self.hybrid, store_kwargs)
            return with_thoughts(docs, thoughts)
        if self.search_type == "mmr":
            docs = self.vectorstore.max_marginal_relevance_search_by_vector(vector, k=k, **store_kwargs)
        else:
            docs = self.vectorstore.similarity_search_by_vector(vector, k=k, **store_kwargs)
        return with_thoughts(docs, thoughts)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: Optional[int] = None, **kwargs: Any) -> list[Document]:
        k, store_kwargs = self._options(k, kwargs)
        # Thinking is seconds of generation: keep it off the event loop.
        vector, thoughts = await run_in_executor(None, self._search, query, store_kwargs)
        await run_manager.get_child().on_custom_event(
            THOUGHTS_EVENT, self._thoughts_event(query, thoughts), run_id=run_manager.run_id)
        if self.hybrid is not None:  # BM25 and the store's listing are synchronous: a worker thread too
            docs = await run_in_executor(None, hybrid_search, self.vectorstore, self._bm25, query, vector, k,
                                         self.hybrid, store_kwargs)
            return with_thoughts(docs, thoughts)
        if self.search_type == "mmr":
            docs = await self.vectorstore.amax_marginal_relevance_search_by_vector(vector, k=k, **store_kwargs)
        else:
            docs = await self.vectorstore.asimilarity_search_by_vector(vector, k=k, **store_kwargs)
        return with_thoughts(docs, thoughts)
