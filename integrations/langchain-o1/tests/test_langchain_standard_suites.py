"""LangChain's own standard test suites, unmodified, on O1Embeddings and O1Retriever (tiny model, real Chroma)."""
from __future__ import annotations

import uuid

import pytest
from langchain_chroma import Chroma
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_o1 import O1Embeddings, O1Retriever

# The suites read constructor params from properties that take no fixtures; this autouse fixture
# fills them in before each test.
_state: dict = {}


@pytest.fixture(autouse=True)
def _o1_params(tiny_embedder, scifact_docs, scifact_queries, tmp_path):
    embeddings = O1Embeddings(embedder=tiny_embedder, num_thoughts=2)
    store = Chroma(collection_name=f"scifact_{uuid.uuid4().hex[:8]}", embedding_function=embeddings,
                   persist_directory=str(tmp_path / "chroma"), collection_metadata={"hnsw:space": "cosine"})
    store.add_texts([d["text"] for d in scifact_docs[:10]], metadatas=[{"corpus_id": d["id"]} for d in scifact_docs[:10]])
    _state.update(embedder=tiny_embedder, store=store, query=scifact_queries[0])


class TestO1EmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[O1Embeddings]:
        return O1Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"embedder": _state["embedder"], "num_thoughts": 2}


class TestO1EmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[O1Embeddings]:
        return O1Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"embedder": _state["embedder"], "num_thoughts": 2, "batch_size": 4}


class TestO1RetrieverIntegration(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[O1Retriever]:
        return O1Retriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"vectorstore": _state["store"], "k": 2, "num_thoughts": 1}

    @property
    def retriever_query_example(self) -> str:
        return _state["query"]
