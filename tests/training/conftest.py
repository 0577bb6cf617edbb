"""Fixtures for the training tests: a tiny BEIR dataset on disk and a tiny random expert model.

The tiny dataset is built from a few topic vocabularies, so that lexical and dense members have real
signal to agree on; texts are random but seeded."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

TOPICS = {
    "heart": "heart blood pressure artery cardiac vessel cholesterol stroke",
    "brain": "brain neuron memory cortex synapse cognition dementia",
    "cancer": "tumor cancer chemotherapy metastasis oncogene malignant biopsy",
    "diabetes": "insulin glucose diabetes pancreas sugar metabolic obesity",
    "virus": "virus vaccine infection immune antibody pathogen viral",
    "ocean": "ocean sea coral reef marine salt tide",
}
FILLER = "the a of and in is for with study results patients effect".split()


def _text(rng: random.Random, topic: str, n: int) -> str:
    words = TOPICS[topic].split()
    return " ".join(rng.choice(words) if rng.random() < 0.6 else rng.choice(FILLER) for _ in range(n))


def write_beir(root: Path, n_queries: int = 12, n_docs: int = 36, seed: int = 0) -> Path:
    """Query i is about topic i % 6; its positive is doc i (same topic); other docs are distractors."""
    rng = random.Random(seed)
    topics = list(TOPICS)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w") as f:
        for i in range(n_docs):
            f.write(json.dumps({"_id": f"d{i}", "title": topics[i % 6], "text": _text(rng, topics[i % 6], 24)}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for i in range(n_queries):
            f.write(json.dumps({"_id": f"q{i}", "text": _text(rng, topics[i % 6], 6)}) + "\n")
    with (root / "qrels" / "train.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for i in range(n_queries):
            f.write(f"q{i}\td{i}\t1\n")
    return root


def write_triplets(path: Path, n: int = 12, n_neg: int = 3, seed: int = 0, thought: bool = True) -> Path:
    rng = random.Random(seed)
    topics = list(TOPICS)
    with path.open("w") as f:
        for i in range(n):
            t = topics[i % 6]
            other = [x for x in topics if x != t]
            rec = {"query": _text(rng, t, 6), "pos": [_text(rng, t, 20)],
                   "neg": [_text(rng, rng.choice(other), 20) for _ in range(n_neg)]}
            if thought:
                rec["thought"] = _text(rng, t, 10)
            f.write(json.dumps(rec) + "\n")
    return path


@pytest.fixture
def tiny_beir(tmp_path) -> Path:
    return write_beir(tmp_path / "beir")


@pytest.fixture
def triplets(tmp_path) -> Path:
    return write_triplets(tmp_path / "train.jsonl")


@pytest.fixture(scope="session")
def minilm_member():
    from o1_retriever.default_model import minilm_path
    from o1_retriever_training.members import DenseMember
    try:
        path = minilm_path()
    except ImportError as e:
        pytest.skip(str(e))
    return DenseMember(path, name="minilm")
