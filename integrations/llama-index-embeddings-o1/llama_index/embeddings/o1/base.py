"""O1Embedding: a LlamaIndex embedding model whose query embeddings think first (O1 Embedder)."""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional, Union

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, field_validator
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from o1_retriever import O1Embedder
from o1_retriever.chroma import num_thoughts_arg
from o1_retriever.server.client import DEFAULT_TIMEOUT, RemoteEmbedder
from o1_retriever.validation import check_positive_int

DEFAULT_BATCH_SIZE = 32
THOUGHTS_KEY = "o1_thoughts"  # node metadata and EMBEDDING callback payload key
dispatcher = get_dispatcher(__name__)
# what to_dict() records about the engine: replaced when from_dict() is given one
_MODEL_KEYS = ("model_path", "model_kwargs", "model_source", "model_name", "url")
# the engine is built from these once: a new value would be written by to_dict() but never loaded
_ENGINE_FIELDS = (*_MODEL_KEYS, "api_key", "timeout")


class O1ThoughtsEvent(BaseEvent):
    """Instrumentation event: the thoughts an O1 model wrote for one query before embedding it. It fires inside
    the EmbeddingStartEvent/EmbeddingEndEvent pair of that query, so a handler sees what the model thought."""

    query: str
    thoughts: List[str]
    num_thoughts: int

    @classmethod
    def class_name(cls) -> str:
        return "O1ThoughtsEvent"


def embed_queries_with_events(embedder: O1Embedder, queries: List[str], num_thoughts: int,
                              callback_manager: CallbackManager, model_dict: dict,
                              batch_size: int = DEFAULT_BATCH_SIZE,
                              show_progress_bar: bool = False) -> tuple[List[Embedding], List[List[str]]]:
    """Think and embed `queries` in one engine call, firing what LlamaIndex fires for a query embedding
    (EmbeddingStartEvent/EmbeddingEndEvent and the callback EMBEDDING event, whose end payload also carries the
    thoughts under "o1_thoughts") plus one O1ThoughtsEvent per query. For callers that are not a BaseEmbedding,
    such as the O1 retriever."""
    dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
    with callback_manager.event(CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}) as event:
        encoding = embedder.encode_queries(list(queries), k=num_thoughts, batch_size=batch_size,
                                           show_progress_bar=show_progress_bar, return_thoughts=True)
        vectors = encoding.embeddings.tolist()
        thoughts = [list(t) for t in encoding.thoughts]
        for query, own in zip(queries, thoughts):
            dispatcher.event(O1ThoughtsEvent(query=query, thoughts=own, num_thoughts=num_thoughts))
        event.on_end(payload={EventPayload.CHUNKS: list(queries), EventPayload.EMBEDDINGS: vectors,
                              THOUGHTS_KEY: thoughts})
    dispatcher.event(EmbeddingEndEvent(chunks=list(queries), embeddings=vectors))
    return vectors, thoughts


class O1Embedding(BaseEmbedding):
    """Queries: `num_thoughts` sampled thoughts, each embedded with the query, averaged. Documents: embedded directly.

    Pass an existing `O1Embedder` as `embedder` (shared, never reloaded), or `model_path` (None: the
    bundled default model) with `model_kwargs` for `O1Embedder.from_pretrained` (device, dtype,
    quantization, thought_cache, max_new_tokens, ...). Or `url` (with `api_key`): an `o1-retriever serve` server
    embeds instead, queries through its `NAME-query` id and texts through `NAME-document` (`model_name` picks NAME;
    None: the server's).

        embed_model = O1Embedding(num_thoughts=3)
        index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)
    """

    model_path: Optional[str] = Field(
        default=None, description="Checkpoint directory or hub id; None loads the bundled default model.")
    model_kwargs: Dict[str, Any] = Field(
        default_factory=dict, description="Options for O1Embedder.from_pretrained (device, dtype, ...).")
    num_thoughts: int = Field(default=3, ge=0, description="Thoughts per query; 0 embeds the bare query.")
    embed_batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE, gt=0, le=2048, description="Texts per forward pass (with url: per request).")
    show_progress_bar: bool = Field(default=False, description="Show the engine's progress bars.")
    url: Optional[str] = Field(default=None, description="An `o1-retriever serve` server, e.g. http://127.0.0.1:8000.")
    # Never serialised: to_dict() output is often saved; a reloaded model reads $O1_RETRIEVER_API_KEY instead.
    api_key: Optional[str] = Field(default=None, exclude=True, repr=False,
                                   description="The server's key; None: $O1_RETRIEVER_API_KEY.")
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, description="Seconds per request to the server.")
    model_source: Optional[Dict[str, str]] = Field(
        default=None, description="The parts of a model assembled in one process (O1Embedder.composite), which "
                                  "no path reloads: from_dict() then needs embedder=..., never another model.")

    # validate_assignment: `embed_model.num_thoughts = -1` is refused as the constructor refuses it
    model_config = ConfigDict(validate_assignment=True)

    _embedder: Union[O1Embedder, RemoteEmbedder] = PrivateAttr()
    _last_thoughts: List[str] = PrivateAttr(default_factory=list)
    _built: bool = PrivateAttr(default=False)

    @field_validator("num_thoughts", mode="before")  # before coercion: True or "3" is a mistake, not 1 or 3
    @classmethod
    def _check_num_thoughts(cls, n: Any) -> int:
        return num_thoughts_arg(n, None, "O1Embedding")

    @field_validator("embed_batch_size", mode="before")
    @classmethod
    def _check_batch_size(cls, n: Any) -> int:
        return check_positive_int(n, "embed_batch_size")

    def __init__(self, embedder: Optional[Union[O1Embedder, RemoteEmbedder]] = None, model_path: Optional[str] = None,
                 num_thoughts: Optional[int] = None, embed_batch_size: int = DEFAULT_BATCH_SIZE,
                 model_kwargs: Optional[Dict[str, Any]] = None,
                 callback_manager: Optional[CallbackManager] = None, k: Optional[int] = None,
                 url: Optional[str] = None, api_key: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT,
                 **kwargs: Any) -> None:
        # k: the older name, still read (and from to_dict() output written before the rename)
        num_thoughts = num_thoughts_arg(num_thoughts, k, "O1Embedding")
        if embedder is not None and not isinstance(embedder, (O1Embedder, RemoteEmbedder)):
            raise TypeError(f"embedder must be an o1_retriever.O1Embedder, got {type(embedder).__name__}")
        if sum([embedder is not None, url is not None, model_path is not None or bool(model_kwargs)]) > 1:
            raise ValueError("pass one of: an existing embedder, url (a server), or model_path/model_kwargs")
        if api_key is not None and url is None:
            raise ValueError("api_key is the key of an o1-retriever server: pass url too")
        model_kwargs = dict(model_kwargs or {})
        assembled = kwargs.pop("model_source", None)  # written by to_dict() for a model assembled from parts
        if assembled and embedder is None and url is None and model_path is None:
            raise ValueError(f"this O1Embedding wrapped a model assembled from parts in one process ({assembled}, "
                             "e.g. by O1Embedder.composite()), which no path reloads: rebuild it and pass it as "
                             "O1Embedding(embedder=...), or from_dict(data, embedder=...)")
        # With url: the served name (to_dict() writes it back). Without: the model to load when no model_path names
        # one, as HuggingFaceEmbedding(model_name=...) takes it, never the bundled default in its place.
        served = kwargs.pop("model_name", None)
        if served is not None and url is None and embedder is None and model_path is None:
            model_path, served = served, None
        # Validate the cheap fields before any model is loaded.
        super().__init__(model_path=None if model_path is None else str(model_path), model_kwargs=model_kwargs,
                         num_thoughts=num_thoughts, embed_batch_size=embed_batch_size,
                         callback_manager=callback_manager, url=url, api_key=api_key, timeout=timeout,
                         model_name=served or "o1-retriever", **kwargs)
        if url is not None:
            embedder = RemoteEmbedder(url, api_key=api_key, model=served, timeout=timeout)
        elif embedder is None:
            embedder = O1Embedder.from_pretrained(self.model_path, **model_kwargs)
        elif isinstance(embedder, O1Embedder) and not embedder.source.from_parts:
            # so to_dict()/from_dict() reload the same checkpoint, with the options it runs with here
            self.model_path, self.model_kwargs = embedder.source.path, embedder.load_options()
        elif isinstance(embedder, O1Embedder):  # recorded, so from_dict() refuses instead of loading the default
            self.model_source = embedder.source.as_dict()
        self._embedder = embedder
        if isinstance(embedder, RemoteEmbedder):
            self.url = embedder.url
            self.model_name = embedder.served_name  # reads /health: a wrong url fails here, as a wrong path does
        else:
            self.model_name = embedder.name
        self._built = True

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _ENGINE_FIELDS and self._built:
            raise AttributeError(f"{name} is fixed once the model is loaded (it was built from model_path, "
                                 f"model_kwargs, url, api_key and timeout); make a new O1Embedding({name}=...)")
        super().__setattr__(name, value)

    @classmethod
    def class_name(cls) -> str:
        return "O1Embedding"

    @classmethod
    def from_dict(cls, data: Dict[str, Any], **kwargs: Any) -> "O1Embedding":
        """Rebuild from `to_dict()` output. With `embedder=`, that engine replaces the recorded model and the
        recorded settings (num_thoughts, batch size) are kept: no second copy is loaded."""
        if kwargs.get("embedder") is not None:
            data = {key: value for key, value in data.items() if key not in _MODEL_KEYS}
        return super().from_dict(data, **kwargs)

    def __getstate__(self) -> Dict[str, Any]:
        # LlamaIndex pickles an embedding model by its fields and rebuilds it from them (IngestionPipeline's worker
        # processes): a model assembled in this process has none that rebuild it, and would come back without one.
        if self.model_source:
            raise TypeError(f"cannot pickle an O1Embedding over a model assembled from parts in one process "
                            f"({self.model_source}, e.g. by O1Embedder.composite()): no path rebuilds it in another "
                            "process. Write it as a directory (o1_retriever.composite.write_composite(dir, thinker, "
                            "encoder)) and pass model_path=dir, or keep it in this process (IngestionPipeline.run "
                            "without num_workers)")
        return super().__getstate__()

    def __deepcopy__(self, memo: Optional[Dict[int, Any]] = None) -> "O1Embedding":
        # the settings are copied; the engine (model weights, a server's client) is shared, not loaded twice, and
        # so are the callback handlers, which observe both
        memo = {} if memo is None else memo
        for shared in (self._embedder, self.callback_manager):
            memo[id(shared)] = shared
        return super().__deepcopy__(memo)

    @property
    def embedder(self) -> Union[O1Embedder, RemoteEmbedder]:
        """The underlying engine, to share with other wrappers without loading a second copy."""
        return self._embedder

    def chroma_collection(self, client: Any, name: str) -> Any:
        """A Chroma collection for `ChromaVectorStore` that records this model (one contract with O1Index, plain
        Chroma's `query_texts` and LangChain): created if missing, refused if it holds another model's vectors.

            store = ChromaVectorStore(chroma_collection=embed_model.chroma_collection(client, "docs"))
        """
        from o1_retriever.chroma import open_collection
        return open_collection(client, name, self._embedder, num_thoughts=self.num_thoughts)

    @property
    def k(self) -> int:
        """The older name of `num_thoughts`."""
        return self.num_thoughts

    @property
    def last_thoughts(self) -> List[str]:
        """The thoughts written for the most recent query embedding."""
        return list(self._last_thoughts)

    def _get_query_embedding(self, query: str) -> Embedding:
        encoding = self._embedder.encode_queries(query, k=self.num_thoughts, batch_size=self.embed_batch_size,
                                                 show_progress_bar=self.show_progress_bar, return_thoughts=True)
        self._last_thoughts = list(encoding.thoughts)
        # inside LlamaIndex's own EmbeddingStartEvent/EmbeddingEndEvent for this query
        dispatcher.event(O1ThoughtsEvent(query=query, thoughts=self._last_thoughts, num_thoughts=self.num_thoughts))
        return encoding.embeddings.tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        # Generation takes seconds: run it in a worker thread so the event loop keeps serving.
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embedder.encode_documents(text).tolist()

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        if not texts:
            return []
        vectors = self._embedder.encode_documents(list(texts), batch_size=self.embed_batch_size,
                                                  show_progress_bar=self.show_progress_bar)
        return vectors.tolist()

    async def _aget_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

