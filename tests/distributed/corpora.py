"""Corpus rows for the Ray tests, written as JSONL the way users write them."""
from __future__ import annotations

import json
import random


def make_documents(n: int, seed: int = 0) -> list[dict]:
    """BEIR-style corpus rows: some with a title, some with metadata fields of several types."""
    from tests.fixtures import WORDS
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row = {"_id": f"d{i:04d}", "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))}
        if i % 3 == 0:
            row["title"] = " ".join(rng.choice(WORDS) for _ in range(3))
        if i % 4 == 0:
            row["year"] = 1990 + i % 30
            row["source"] = rng.choice(["pubmed", "wiki"])
        rows.append(row)
    rng.shuffle(rows)  # file order is not id order
    return rows


def write_jsonl(path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps(row) + "\n")
            if i % 50 == 7:
                f.write("\n")  # blank lines are skipped, as by read_corpus


def embedded_text(row: dict) -> str:
    """What `o1-retriever index` embeds for a corpus row (corpus.Passage.full_text)."""
    return f"{row['title']}. {row['text']}" if row.get("title") else row["text"]
