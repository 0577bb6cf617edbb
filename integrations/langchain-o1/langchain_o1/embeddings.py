"""O1Embeddings: LangChain embeddings whose query vectors think first (O1 Embedder)."""
from __future__ import annotations

from typing import Any, Optional

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from o1_retriever import O1Embedder, QueryEncoding
from pydantic import BaseModel, ConfigDict, Field, model_validator


class O1Embeddings(BaseModel, Embeddings):
    """`embed_query` writes `num_thoughts` thoughts, embeds query + thought for each and averages;
    `embed_documents` embeds passages directly, in batches.

    Pass an existing `O1Embedder` as `embedder` (used as is, never reloaded), or `model` (a checkpoint
    directory or hub id; None: the bundled default model) with `model_kwargs` for
    `O1Embedder.from_pretrained` (device, dtype, quantization, thought_cache, max_new_tokens, ...).

        embeddings = O1Embeddings(num_thoughts=3)
        vectorstore = Chroma.from_texts(texts, embedding=embeddings)
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

    model: Optional[str] = Field(default=None, description="Checkpoint dir or hub id; None: bundled default.")
    model_kwargs: dict[str, Any] = Field(default_factory=dict,
                                         description="Options for O1Embedder.from_pretrained.")
    embedder: Optional[O1Embedder] = Field(default=None, exclude=True, repr=False,
                                           description="An already loaded O1Embedder to share.")
    num_thoughts: int = Field(default=3, ge=0, description="Thoughts per query; 0 embeds the bare query.")
    batch_size: int = Field(default=32, gt=0, description="Texts per forward pass.")
    show_progress: bool = Field(default=False, description="Show the engine's progress bars.")

    @model_validator(mode="after")
    def _load_model(self) -> "O1Embeddings":
        if self.embedder is not None:
            if self.model is not None or self.model_kwargs:
                raise ValueError("pass either an existing embedder or model/model_kwargs, not both")
        else:
            self.embedder = O1Embedder.from_pretrained(self.model, **self.model_kwargs)
        return self

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:  # vector stores may flush an empty batch
            return []
        return self.embedder.encode_documents(list(texts), batch_size=self.batch_size,
                                              show_progress_bar=self.show_progress).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_query_with_thoughts(text).embeddings.tolist()

    def embed_query_with_thoughts(self, text: str, num_thoughts: Optional[int] = None) -> QueryEncoding:
        """The query vector (1-D numpy) and the thoughts behind it."""
        if not isinstance(text, str):
            raise TypeError(f"query must be a str, got {type(text).__name__}")
        k = self.num_thoughts if num_thoughts is None else num_thoughts
        return self.embedder.encode_queries(text, k=k, batch_size=self.batch_size,
                                            show_progress_bar=self.show_progress, return_thoughts=True)

    def collection_configuration(self) -> dict[str, Any]:
        """Chroma collection settings that record this model, so the collection keeps one contract with O1Index,
        plain Chroma (`query_texts` thinks) and LlamaIndex, and another model is refused when it is reopened:

            Chroma.from_texts(texts, embedding=embeddings,
                              collection_configuration=embeddings.collection_configuration())
        """
        from o1_retriever.chroma import O1EmbeddingFunction
        return {"embedding_function": O1EmbeddingFunction(self.embedder, num_thoughts=self.num_thoughts,
                                                         batch_size=self.batch_size),
                "hnsw": {"space": "cosine"}}

    # Generation takes seconds: the async versions run the model in a worker thread.
    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await run_in_executor(None, self.embed_query, text)
