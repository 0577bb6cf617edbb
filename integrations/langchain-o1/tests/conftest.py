"""This package's tests use the repository's shared fixtures (tiny models, a SciFact slice). They are plugins,
registered here so that `pytest` run from this directory finds them as `make test` from the root does.

The standard suites' async tests are bare `async def` (LangChain packages run pytest-asyncio in
auto mode). Mark just those, as pytest-asyncio collects them, leaving strict mode alone elsewhere."""
import inspect
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the `tests` plugins live in the repository, not in this package

pytest_plugins = ["tests.fixtures", "tests.integrations.fixtures"]


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    if HERE in Path(collector.path).parents and inspect.iscoroutinefunction(obj) and name.startswith("test_"):
        marks = getattr(obj, "pytestmark", [])
        if not any(mark.name == "asyncio" for mark in marks):
            pytest.mark.asyncio(obj)


@pytest.fixture
def scifact_store(tiny_embedder, scifact_docs, tmp_path):
    """`scifact_store(num_thoughts)`: a Chroma store of ten SciFact passages embedded by the tiny O1 model."""
    def make(num_thoughts: int):
        from langchain_chroma import Chroma

        from langchain_o1 import O1Embeddings
        docs = scifact_docs[:10]
        return Chroma.from_texts([d["text"] for d in docs],
                                 embedding=O1Embeddings(embedder=tiny_embedder, num_thoughts=num_thoughts),
                                 metadatas=[{"corpus_id": d["id"]} for d in docs], collection_name="scifact",
                                 persist_directory=str(tmp_path), collection_metadata={"hnsw:space": "cosine"})
    return make
