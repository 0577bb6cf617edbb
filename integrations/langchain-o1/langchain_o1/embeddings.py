"""O1Embeddings: LangChain embeddings whose query vectors think first (O1 Embedder)."""
from __future__ import annotations

from typing import Any, Optional, Union

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from o1_retriever import O1Embedder, QueryEncoding
from o1_retriever.chroma import num_thoughts_arg
from o1_retriever.server.client import DEFAULT_TIMEOUT, RemoteEmbedder
from o1_retriever.validation import check_positive_int
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator


ENGINE_FIELDS = ("model", "model_kwargs", "embedder", "url", "api_key", "timeout")


class O1Embeddings(BaseModel, Embeddings):
    """`embed_query` writes `num_thoughts` thoughts, embeds query + thought for each and averages;
    `embed_documents` embeds passages directly, in batches.

    Pass an existing `O1Embedder` as `embedder` (used as is, never reloaded), or `model` (a checkpoint
    directory or hub id; None: the bundled default model) with `model_kwargs` for
    `O1Embedder.from_pretrained` (device, dtype, quantization, thought_cache, max_new_tokens, ...).
    Or `url` (with `api_key`): an `o1-retriever serve` server embeds instead, queries through its `NAME-query` id
    and documents through `NAME-document` (`model` is then the served NAME; None: the server's).

        embeddings = O1Embeddings(num_thoughts=3)
        vectorstore = Chroma.from_texts(texts, embedding=embeddings)
    """

    # validate_assignment: `embeddings.num_thoughts = -1` is refused as the constructor refuses it
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=(),
                              validate_assignment=True)

    model: Optional[str] = Field(default=None, description="Checkpoint dir or hub id; None: bundled default. "
                                                            "With url: the served name; None: the server's.")
    model_kwargs: dict[str, Any] = Field(default_factory=dict,
                                         description="Options for O1Embedder.from_pretrained.")
    embedder: Optional[Union[O1Embedder, RemoteEmbedder]] = Field(
        default=None, exclude=True, repr=False, description="An already loaded O1Embedder (or RemoteEmbedder).")
    url: Optional[str] = Field(default=None, description="An `o1-retriever serve` server, e.g. http://127.0.0.1:8000.")
    api_key: Optional[SecretStr] = Field(default=None, description="The server's key; None: $O1_RETRIEVER_API_KEY.")
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, description="Seconds per request to the server.")
    num_thoughts: int = Field(default=3, ge=0, description="Thoughts per query; 0 embeds the bare query.")
    batch_size: int = Field(default=32, gt=0, description="Texts per forward pass (with url: per request).")
    show_progress: bool = Field(default=False, description="Show the engine's progress bars.")
    # Pydantic runs this model's "after" validator again when an instance is passed as another model's field
    # (O1Retriever(embeddings=...)): the embedder built here from url or model must not read as a conflict then.
    _built_here: bool = PrivateAttr(default=False)

    # before pydantic's coercion: num_thoughts=True or "3" is a mistake, not 1 or 3, and a count past the engine's
    # limit is refused here, under this name, not at the first query as the engine's `k`
    @field_validator("num_thoughts", mode="before")
    @classmethod
    def _check_num_thoughts(cls, n: Any) -> int:
        return num_thoughts_arg(n, None, "O1Embeddings")

    @field_validator("batch_size", mode="before")
    @classmethod
    def _check_batch_size(cls, n: Any) -> int:
        return check_positive_int(n, "batch_size")

    def __setattr__(self, name: str, value: Any) -> None:
        # The engine is built from these once; a new value would be recorded by model_dump() but never loaded.
        if name in ENGINE_FIELDS and self.embedder is not None:
            raise AttributeError(f"{name} is fixed once the model is loaded (it was built from model, model_kwargs, "
                                 f"url, api_key and timeout); make a new O1Embeddings({name}=...)")
        super().__setattr__(name, value)

    @model_validator(mode="after")
    def _load_model(self) -> "O1Embeddings":
        if self._built_here:
            return self
        fields = self.__dict__  # written directly: an assignment here would validate the model again
        if self.api_key is not None and self.url is None:
            raise ValueError("api_key is the key of an o1-retriever server: pass url too")
        if self.embedder is not None:
            if self.model is not None or self.model_kwargs or self.url is not None:
                raise ValueError("pass one of: an existing embedder, url (a server), or model/model_kwargs")
            self._record_engine()
            return self
        elif self.url is not None:
            if self.model_kwargs:
                raise ValueError("model_kwargs load a local model; with url the server's model embeds (start it "
                                 "with `o1-retriever serve --model ...` and its options)")
            fields["embedder"] = self._engine()
            self.embedder.info  # noqa: B018  (a wrong url fails here, as a wrong model path does)
        else:
            fields["embedder"] = self._engine()
        self._built_here = self.url is not None or self.model is not None or bool(self.model_kwargs)
        return self

    def _engine(self) -> Union[O1Embedder, RemoteEmbedder]:
        """The engine the fields name: a server's client (url), else the model loaded from `model`."""
        if self.url is not None:
            key = self.api_key.get_secret_value() if self.api_key is not None else None
            return RemoteEmbedder(self.url, api_key=key, model=self.model, timeout=self.timeout)
        return O1Embedder.from_pretrained(self.model, **self.model_kwargs)

    def __deepcopy__(self, memo: Optional[dict] = None) -> "O1Embeddings":
        # the settings are copied; the engine (model weights, a server's client) is shared, not loaded twice
        memo = {} if memo is None else memo
        memo[id(self.embedder)] = self.embedder
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[str, Any]:
        # An engine holds locks and cannot be pickled: pickled by the fields that rebuild it (as LlamaIndex's
        # O1Embedding is), so a worker process loads the same model.
        if isinstance(self.embedder, O1Embedder) and self.embedder.source.from_parts:
            raise TypeError("cannot pickle O1Embeddings over a model assembled from parts in one process (e.g. by "
                            "O1Embedder.composite()): no path rebuilds it elsewhere. Write it as a directory "
                            "(o1_retriever.composite.write_composite(dir, thinker, encoder)) and pass model=dir")
        state = super().__getstate__()
        return {**state, "__dict__": {**state["__dict__"], "embedder": None}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__["embedder"] = self._engine()

    def _record_engine(self) -> None:
        """Fill `model` (and `model_kwargs` or `url`) from the embedder given, so model_dump() names it and
        O1Embeddings(**dumped) rebuilds it, instead of None, which reads as the bundled default. A model assembled
        from parts (O1Embedder.composite) has no path that rebuilds it: `model` stays None."""
        engine, fields = self.embedder, self.__dict__
        if isinstance(engine, RemoteEmbedder):
            fields.update(url=engine.url, model=engine.model)
        elif not engine.source.from_parts:
            fields.update(model=engine.source.path, model_kwargs=engine.load_options())
        self._built_here = True

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if isinstance(texts, (str, bytes)) or texts is None:  # a str is a sequence too: one vector per character
            raise TypeError(f"texts must be a list of str, got {type(texts).__name__}; for one query use embed_query")
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
