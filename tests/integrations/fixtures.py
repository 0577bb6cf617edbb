"""Fixtures shared by the integration packages' tests (integrations/<dist>/tests, which register this plugin):
a real SciFact slice and a thread-recording embedder."""
from __future__ import annotations

import json
import threading
from itertools import islice

import pytest

from o1_retriever import O1Embedder


@pytest.fixture(scope="session")
def scifact_docs(shared_data) -> list[dict]:
    """The first 24 SciFact passages (title + abstract, cut short: the tiny model only needs text)."""
    with open(shared_data / "scifact" / "corpus.jsonl") as f:
        rows = [json.loads(line) for line in islice(f, 24)]
    return [{"id": r["_id"], "title": r["title"], "text": f"{r['title']}. {r['text']}"[:600]} for r in rows]


@pytest.fixture(scope="session")
def scifact_queries(shared_data) -> list[str]:
    with open(shared_data / "scifact" / "queries.jsonl") as f:
        return [json.loads(line)["text"] for line in islice(f, 3)]


class ThreadRecordingEmbedder(O1Embedder):
    """The tiny embedder itself (same weights, no reload) that notes which thread ran each query."""
    threads: list

    def encode_queries(self, *args, **kwargs):
        self.threads.append(threading.current_thread())
        return super().encode_queries(*args, **kwargs)


@pytest.fixture
def recording_embedder(tiny_embedder) -> ThreadRecordingEmbedder:
    probe = ThreadRecordingEmbedder.__new__(ThreadRecordingEmbedder)
    probe.__dict__.update(tiny_embedder.__dict__)
    probe.threads = []
    return probe
