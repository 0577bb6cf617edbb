"""O1Retriever: a LangChain retriever that thinks, embeds the query with its thoughts, then searches."""
from __future__ import annotations

from typing import Any, Optional

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from o1_retriever.validation import check_k, check_positive_int
from pydantic import ConfigDict, Field, field_validator, model_validator

from langchain_o1.embeddings import O1Embeddings

THOUGHTS_KEY = "o1_thoughts"


class O1Retriever(BaseRetriever):
    """Search any LangChain `VectorStore` with thinking query embeddings.

    The store must hold document vectors from the same model (e.g. `Chroma(embedding_function=
    O1Embeddings(...))`); when `embeddings` is not given, the store's own `O1Embeddings` is used.
    Each returned `Document` carries the thoughts in `metadata["o1_thoughts"]`.

        retriever = O1Retriever(vectorstore=store, k=4, num_thoughts=3)
        docs = retriever.invoke("what causes diabetes?", k=2)  # k per call overrides the default
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    vectorstore: VectorStore = Field(description="Any LangChain vector store holding O1 document vectors.")
    embeddings: Optional[O1Embeddings] = Field(default=None, description="Defaults to the store's embeddings.")
    k: int = Field(default=4, description="Documents returned per query.")
    num_thoughts: Optional[int] = Field(default=None, description="Thoughts per query; None: the embeddings' own.")
    search_kwargs: dict[str, Any] = Field(default_factory=dict,
                                          description="Extra arguments for similarity_search_by_vector (e.g. filter).")

    @model_validator(mode="before")
    @classmethod
    def _check_store_type(cls, values: Any) -> Any:
        store = values.get("vectorstore") if isinstance(values, dict) else None
        if store is not None and not isinstance(store, VectorStore):
            raise TypeError("vectorstore must be a LangChain VectorStore (e.g. langchain_chroma.Chroma), "
                            f"got {type(store).__module__}.{type(store).__name__}")
        return values

    @field_validator("k")
    @classmethod
    def _check_k(cls, k: int) -> int:
        return check_positive_int(k, "k")

    @field_validator("num_thoughts")
    @classmethod
    def _check_num_thoughts(cls, n: Optional[int]) -> Optional[int]:
        return None if n is None else check_k(n)

    @model_validator(mode="after")
    def _find_embeddings(self) -> "O1Retriever":
        if self.embeddings is None:
            own = getattr(self.vectorstore, "embeddings", None)
            if not isinstance(own, O1Embeddings):
                raise ValueError(f"{type(self.vectorstore).__name__} does not embed with O1Embeddings; "
                                 "pass embeddings=O1Embeddings(...) (the model that embedded its documents)")
            self.embeddings = own
        return self

    def _search(self, query: str, k: Optional[int]) -> tuple[list[float], list[str], int]:
        k = self.k if k is None else check_positive_int(k, "k")
        encoding = self.embeddings.embed_query_with_thoughts(query, self.num_thoughts)
        return encoding.embeddings.tolist(), list(encoding.thoughts), k

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: Optional[int] = None, **kwargs: Any) -> list[Document]:
        vector, thoughts, k = self._search(query, k)
        docs = self.vectorstore.similarity_search_by_vector(vector, k=k, **{**self.search_kwargs, **kwargs})
        return _with_thoughts(docs, thoughts)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: Optional[int] = None, **kwargs: Any) -> list[Document]:
        # Thinking is seconds of generation: keep it off the event loop.
        vector, thoughts, k = await run_in_executor(None, self._search, query, k)
        docs = await self.vectorstore.asimilarity_search_by_vector(vector, k=k, **{**self.search_kwargs, **kwargs})
        return _with_thoughts(docs, thoughts)


def _with_thoughts(docs: list[Document], thoughts: list[str]) -> list[Document]:
    return [Document(page_content=d.page_content, metadata={**d.metadata, THOUGHTS_KEY: list(thoughts)}, id=d.id)
            for d in docs]
