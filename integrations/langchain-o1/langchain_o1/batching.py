"""One engine call for all the queries of a LangChain `batch` / `abatch`, made inside the queries' own runs."""
from __future__ import annotations

import threading
from typing import Any, Optional

from o1_retriever import QueryEncoding

from langchain_o1.store_search import valid_query


class PendingThoughts:
    """The thoughts of a batch's queries, written in one `encode_queries` call (batched generation is several
    times faster per query than one query per thread) by the first of the batch's runs that needs one; the
    others wait for it, as on a shared future. The thinking thus happens inside a query's run, as with `invoke`,
    after that run's arguments were checked, and a failure is raised in every run that needed it (so
    `return_exceptions=True` and the callbacks' `on_retriever_error` see it), not from `batch` itself."""

    def __init__(self, embeddings: Any, queries: list, num_thoughts: int):
        self.embeddings, self.queries, self.num_thoughts = embeddings, queries, num_thoughts
        self.lock = threading.Lock()
        self.result: Optional[dict] = None
        self.error: Optional[BaseException] = None

    def get(self, query: str) -> QueryEncoding:
        with self.lock:
            if self.result is None and self.error is None:
                try:
                    e = self.embeddings
                    encoding = e.embedder.encode_queries(self.queries, k=self.num_thoughts, batch_size=e.batch_size,
                                                         show_progress_bar=e.show_progress, return_thoughts=True)
                    self.result = {q: QueryEncoding(encoding.embeddings[i], encoding.thoughts[i])
                                   for i, q in enumerate(self.queries)}
                except Exception as err:
                    self.error = err
        if self.error is not None:
            raise self.error
        return self.result[query]


class BatchedThinking:
    """For O1Retriever: `batch` and `abatch` register their queries in `_pending` ((query, thoughts per query) ->
    PendingThoughts) and run LangChain's own batch; the first call that thinks thinks for all of them. Each query's
    thoughts are its own, as with `invoke`. Uses the retriever's `embeddings`, `_thoughts()` and `_pending`."""

    def _encoding(self, query: str) -> Optional[QueryEncoding]:
        pending = self._pending.get((query, self._thoughts()))
        # a copy of this retriever given other embeddings shares nothing it would read wrongly
        return pending.get(query) if pending is not None and pending.embeddings is self.embeddings else None

    def _register(self, inputs: list) -> list:
        # A bad query is left to its own call, which fails alone with its own error (return_exceptions=True holds)
        n = self._thoughts()
        todo = [q for q in sorted({q for q in inputs if valid_query(q)}) if (q, n) not in self._pending]
        if len(todo) < 2:
            return []
        pending = PendingThoughts(self.embeddings, todo, n)
        for q in todo:
            self._pending[(q, n)] = pending
        return [((q, n), pending) for q in todo]

    def _forget(self, registered: list) -> None:
        for key, pending in registered:  # another batch may still read one: it then thinks again, alike
            if self._pending.get(key) is pending:
                self._pending.pop(key, None)

    def batch(self, inputs: list, config: Any = None, **kwargs: Any) -> list:
        registered = self._register(inputs)
        try:
            return super().batch(inputs, config, **kwargs)
        finally:
            self._forget(registered)

    async def abatch(self, inputs: list, config: Any = None, **kwargs: Any) -> list:
        registered = self._register(inputs)  # no engine call here: cheap enough for the event loop
        try:
            return await super().abatch(inputs, config, **kwargs)
        finally:
            self._forget(registered)
