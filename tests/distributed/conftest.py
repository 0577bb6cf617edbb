"""Fixtures for the Ray tests: one local Ray per test module (2 CPUs), corpora, and encoded shards."""
from __future__ import annotations

import pytest

from tests.distributed.corpora import make_documents, write_jsonl


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """A local Ray with 2 CPUs for the whole module (starting one costs seconds). Workers inherit this environment
    at start, so their default thought cache is a temporary directory, never the user's."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    mp = pytest.MonkeyPatch()
    mp.setenv("O1_RETRIEVER_CACHE", str(tmp_path_factory.mktemp("o1_cache")))
    mp.setenv("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    mp.undo()


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    return make_documents(300)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, documents):
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    write_jsonl(path, documents)
    return path


@pytest.fixture(scope="module")
def model_options() -> dict:
    return {"dtype": "fp32", "thought_cache": False}
