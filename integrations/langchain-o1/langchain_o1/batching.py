"""One engine call for all the queries of a LangChain `batch` / `abatch`."""
from __future__ import annotations

from typing import Any

from langchain_core.runnables.config import run_in_executor
from o1_retriever import QueryEncoding

from langchain_o1.store_search import valid_query


class BatchedThinking:
    """For O1Retriever: `batch` and `abatch` think about every query first, in one `encode_queries` call (batched
    generation is several times faster per query than one query per thread), then run LangChain's own batch, whose
    calls find their encodings in `_prefetched` ((query, thoughts per query) -> QueryEncoding). Each query's
    thoughts are its own, as with `invoke`. Uses the retriever's `embeddings`, `_thoughts()` and `_prefetched`."""

    def _prefetch(self, inputs: list) -> list:
        # A bad query is left to its own call, which fails alone with its own error (return_exceptions=True holds)
        queries = sorted({q for q in inputs if valid_query(q)})
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

