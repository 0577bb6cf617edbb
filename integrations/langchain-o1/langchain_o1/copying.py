"""How an O1Retriever is copied and pickled: the store and the model are resources, not settings."""
from __future__ import annotations

from typing import Any, Optional

from langchain_o1.store_search import chroma_collection


class SharedOnCopy:
    """For O1Retriever (`vectorstore`, `embeddings`, `_bm25`, `_pending`): `copy.deepcopy` (and
    `model_copy(deep=True)`) copies the settings and shares the store and the model; pickling a retriever over
    a Chroma store, whose client cannot be pickled, is refused with what to do instead."""

    def __deepcopy__(self, memo: Optional[dict] = None) -> Any:
        # The store (a database client, which cannot be copied) and the model (its weights) are shared, as
        # LangChain's tracers share themselves; the settings are copied, and batches in flight are not.
        memo = {} if memo is None else memo
        for shared in (self.vectorstore, self.embeddings, self._bm25):
            memo[id(shared)] = shared
        memo[id(self._pending)] = {}
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[str, Any]:
        if chroma_collection(self.vectorstore) is not None:  # else pickle fails deep in chromadb's Rust bindings
            raise TypeError("cannot pickle an O1Retriever over a langchain_chroma.Chroma store: its chromadb client "
                            "cannot be pickled. In the other process build one over the same collection: "
                            "O1Retriever(vectorstore=Chroma(collection_name=..., persist_directory=..., "
                            "embedding_function=O1Embeddings(model=...)), ...)")
        state = super().__getstate__()
        return {**state, "__pydantic_private__": {**state["__pydantic_private__"], "_pending": {}}}

