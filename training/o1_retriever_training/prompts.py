"""The expert's prompts: a few-shot chat per query for its thoughts, and in doc-to-query mode one asking for the
query a passage answers."""
from __future__ import annotations

import random
import re

THOUGHT_SYSTEM = ("You are an expert in information retrieval. Given a search query, write a short passage "
                  "(two to four sentences) with the knowledge that a relevant document would contain. "
                  "Write only the passage.")
QUERY_SYSTEM = "Write one short search query that the passage answers. Reply with the query only."


def shorten(text: str, words: int = 60) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def thought_messages(query: str, shots: list[tuple[str, str]]) -> list[dict]:
    """Few-shot chat: each shot is a (query -> relevant passage) exchange, then the real query."""
    messages = [{"role": "system", "content": THOUGHT_SYSTEM}]
    for q, passage in shots:
        messages += [{"role": "user", "content": f"Query: {q}"}, {"role": "assistant", "content": shorten(passage)}]
    return messages + [{"role": "user", "content": f"Query: {query}"}]


def query_messages(passage: str) -> list[dict]:
    return [{"role": "system", "content": QUERY_SYSTEM}, {"role": "user", "content": f"Passage: {shorten(passage, 120)}"}]


def clean_query(text: str) -> str:
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    return re.sub(r"^(search\s+)?query\s*:\s*", "", line.strip(), flags=re.I).strip(" \"'")


def conversations(args, queries: list[tuple[str, str]], pool: list) -> list[list[dict]]:
    """One few-shot chat per (query id, query); shots are other queries' (query, positive) pairs, seeded per query."""
    out = []
    for qid, query in queries:
        shots = []
        if args.num_shots:  # the pool minus this query is a copy per query: skip it when no shot is asked for
            others = [(q, passage) for other, q, passage in pool if other != qid]
            shots = random.Random(f"{args.seed}/{qid}").sample(others, min(args.num_shots, len(others)))
        out.append(thought_messages(query, shots))
    return out
