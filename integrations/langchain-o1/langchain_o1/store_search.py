"""What O1Retriever asks of its LangChain vector store: the search arguments it checks before any thinking, the
store's search by vector, and hybrid fusion over a Chroma collection's texts."""
from __future__ import annotations

import inspect
import uuid
from typing import Any, Optional

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore
from o1_retriever.hybrid import CollectionBM25, dense_pool, fuse_with_bm25
from o1_retriever.validation import as_text_list, check_positive_int

THOUGHTS_KEY = "o1_thoughts"
# VectorStore.as_retriever's search types that take a query vector; "similarity_score_threshold" has no by-vector
# method on a VectorStore, so it is refused rather than half-done.
SEARCH_METHODS = {"similarity": "similarity_search_by_vector", "mmr": "max_marginal_relevance_search_by_vector"}
SEARCH_TYPES = tuple(SEARCH_METHODS)
MMR_ARGS = ("fetch_k", "lambda_mult")
FILTER_ARGS = ("filter", "where_document")  # Chroma's filters; the only arguments BM25 applies too
# Collection.query arguments langchain_chroma fills itself (one in search_kwargs too would be passed twice), and
# include, the shape of the result it reads back
CHROMA_FILLED = {"query_texts", "query_embeddings", "query_images", "query_uris", "n_results", "where",
                 "where_document", "include"}


def chroma_collection(store: VectorStore) -> Any:
    """The chromadb collection behind a `langchain_chroma.Chroma` (its `_collection`: LangChain has no public
    accessor), or None. Only a real chromadb `Collection` counts: another store's `_collection` may have
    `count`/`get` methods that mean something else."""
    try:
        from chromadb.api.models.Collection import Collection
    except ImportError:  # no chromadb, so no Chroma store
        return None
    collection = getattr(store, "_collection", None)
    return collection if isinstance(collection, Collection) else None


def accepted_args(store: VectorStore, search_type: str, hybrid: Optional[float]) -> Optional[frozenset]:
    """The search arguments the store's by-vector search takes, or None when it passes unknown ones on to where
    they cannot be seen (any argument may then mean something)."""
    if hybrid is not None:
        return frozenset(("k", *FILTER_ARGS))
    parameters = inspect.signature(getattr(store, SEARCH_METHODS[search_type])).parameters.values()
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"embedding"}
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        collection = chroma_collection(store)
        if collection is None:
            return None
        # langchain_chroma hands the rest to Collection.query, whose signature says what it takes
        named |= set(inspect.signature(collection.query).parameters) - CHROMA_FILLED
    return frozenset(named)


def search_options(store: VectorStore, search_type: str, hybrid: Optional[float], field_k: int,
                   search_kwargs: dict, call_k: Optional[int], call_kwargs: dict) -> tuple[int, dict]:
    """(documents to return, store arguments). `k` is LangChain's documents-per-query everywhere: a call's `k`,
    else `search_kwargs["k"]` (as in `vectorstore.as_retriever(search_kwargs={"k": 5})`), else the field."""
    store_kwargs = {**search_kwargs, **call_kwargs}
    if "num_thoughts" in store_kwargs:
        raise TypeError("num_thoughts is a field of O1Retriever (or O1Embeddings), not a search argument: "
                        "O1Retriever(vectorstore=..., num_thoughts=3)")
    # Arguments of another search type would reach the store and fail there with its own words (chromadb:
    # "Collection.query() got an unexpected keyword argument"), after seconds of thinking.
    if "score_threshold" in store_kwargs:
        raise ValueError(f"score_threshold is an argument of search_type='similarity_score_threshold', which "
                         f"O1Retriever does not have; use one of {list(SEARCH_TYPES)}")
    key = next((key for key in MMR_ARGS if key in store_kwargs), None)
    if key is not None and search_type != "mmr":
        raise ValueError(f"{key} is an argument of search_type='mmr'; this retriever's search_type is "
                         f"{search_type!r}: O1Retriever(..., search_type='mmr')")
    accepted = accepted_args(store, search_type, hybrid)
    unknown = sorted(set(store_kwargs) - accepted) if accepted is not None else []
    if unknown:
        what = "hybrid search" if hybrid is not None else f"{type(store).__name__}.{SEARCH_METHODS[search_type]}"
        raise ValueError(f"search argument(s) {unknown} are not taken by {what}; it takes {sorted(accepted)}")
    if "fetch_k" in store_kwargs:
        check_positive_int(store_kwargs["fetch_k"], "fetch_k")
    lambda_mult = store_kwargs.get("lambda_mult", 0.5)
    if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float)) or not 0 <= lambda_mult <= 1:
        raise ValueError(f"lambda_mult must be a number in [0, 1] (0: most diverse, 1: most similar), "
                         f"got {lambda_mult!r}")
    k = store_kwargs.pop("k", field_k)
    return check_positive_int(k if call_k is None else call_k, "k"), store_kwargs


def check_filters(store: VectorStore, store_kwargs: dict) -> None:
    """A Chroma filter Chroma refuses is named before any thinking: one cheap listing of at most one id each."""
    collection = chroma_collection(store)
    if collection is None:
        return
    for key, where in (("filter", "where"), ("where_document", "where_document")):
        if store_kwargs.get(key) is not None:
            try:
                collection.get(**{where: store_kwargs[key]}, limit=1, include=[])
            except Exception as e:  # chromadb raises ValueError or its own InvalidArgumentError
                raise ValueError(f"{key}={store_kwargs[key]!r} is not a Chroma {where} filter: {e}") from None


def new_chroma(embeddings: Any, persist_directory: Optional[str], collection_name: Optional[str]) -> VectorStore:
    """A `langchain_chroma.Chroma` collection (in memory, or under `persist_directory`) that records the O1 model,
    as O1Index and LlamaIndex's collections do."""
    try:
        from langchain_chroma import Chroma
    except ImportError as e:
        raise ImportError('O1Retriever.from_texts needs langchain-chroma: pip install -e '
                          '"integrations/langchain-o1[chroma]"') from e
    if collection_name is None:  # in-memory Chroma clients share one store: a fresh name keeps retrievers apart
        collection_name = "o1_retriever" if persist_directory else f"o1_retriever_{uuid.uuid4().hex[:12]}"
    return Chroma(collection_name=collection_name, embedding_function=embeddings, persist_directory=persist_directory,
                  collection_configuration=embeddings.collection_configuration())


def add_texts(store: VectorStore, texts: list[str], metadatas: Optional[list[dict]],
              ids: Optional[list[Optional[str]]]) -> None:
    """Chroma.from_texts' adding: ids filled where missing, in batches no larger than the Chroma server takes."""
    from chromadb.utils.batch_utils import create_batches
    texts = list(texts)
    if not texts:  # an empty retriever, filled later through its store
        return
    ids = [i if i is not None else str(uuid.uuid4()) for i in (ids or [None] * len(texts))]
    client = chroma_collection(store)._client
    for batch_ids, _, batch_metadatas, batch_texts in create_batches(client, ids, metadatas=metadatas, documents=texts):
        store.add_texts(texts=batch_texts, metadatas=batch_metadatas, ids=batch_ids)


def hybrid_search(store: VectorStore, bm25: CollectionBM25, query: str, vector: list[float], k: int,
                  dense_weight: float, kwargs: dict) -> list[Document]:
    scored = store.similarity_search_by_vector_with_relevance_scores(vector, k=dense_pool(k), **kwargs)
    # Chroma returns distances; cosine, squared-L2 and inner-product distances of unit vectors are all linear
    # in the cosine, and z-scores do not see a linear map: the negated distance ranks exactly as the cosine.
    found = {d.id: d for d, _ in scored}
    # BM25 sees every text: the filter keeps what it admits, as it does on the dense side
    [ranked] = fuse_with_bm25(bm25, [query], [[(d.id, -dist) for d, dist in scored]], dense_weight, k,
                              where=kwargs.get("filter"), where_document=kwargs.get("where_document"))
    return [found[h.id] if h.text is None else Document(page_content=h.text, metadata=h.metadata, id=h.id)
            for h in ranked]


def valid_query(query: Any) -> bool:
    try:
        as_text_list(query, "query")
    except (TypeError, ValueError):
        return False
    return isinstance(query, str)


def with_thoughts(docs: list[Document], thoughts: list[str]) -> list[Document]:
    return [Document(page_content=d.page_content, metadata={**d.metadata, THOUGHTS_KEY: list(thoughts)}, id=d.id)
            for d in docs]
