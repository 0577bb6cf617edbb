"""How the O1 LlamaIndex retriever is copied and pickled: its store and model are resources, not settings."""
from __future__ import annotations

import copy
from typing import Any, Optional


class SharedOnCopy:
    """For O1Retriever: `copy.deepcopy` copies the settings (filters included) and shares the vector store, docstore,
    model and callback manager (a database client and model weights cannot, or should not, be copied); pickling is
    refused with what to do instead."""

    def __deepcopy__(self, memo: Optional[dict] = None) -> Any:
        memo = {} if memo is None else memo
        for shared in (self._vector_store, self._docstore, self._embedder, self._bm25, self.callback_manager):
            memo[id(shared)] = shared
        copied = object.__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return copied

    def __getstate__(self) -> dict:
        # else pickle fails inside the model or the Chroma client, on an object that names neither
        raise TypeError("cannot pickle an O1Retriever: it holds a loaded model and a vector store's client. In the "
                        "other process build one over the same store: O1Retriever(ChromaVectorStore(chroma_collection="
                        "chromadb.PersistentClient(path).get_collection(name)), O1Embedding(model_path=...)); an "
                        "O1Embedding itself pickles")
