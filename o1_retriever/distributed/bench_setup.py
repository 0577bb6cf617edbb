"""What every configuration of the Ray benchmark (`bench.py`) shares: the documents it encodes, and the machine it
runs on, with how busy that machine was over each configuration."""
from __future__ import annotations

import json
import random
import re
from itertools import islice
from pathlib import Path

from ..machine import describe, load_average
from ..validation import check_positive_int


# ---- the corpus ---------------------------------------------------------------------------------------------------
def demo_variants(n: int, seed: int = 0) -> list[dict]:
    """`n` distinct short passages recombined from the bundled demo corpus: two or three of its sentences each (the
    demo passages' own length), titled after the passage of the first sentence. The same `n` and seed always give
    the same rows."""
    from ..corpus import DEMO_CORPUS, read_corpus
    check_positive_int(n, "docs")
    sentences = [(p.title, s) for p in read_corpus(DEMO_CORPUS) for s in re.split(r"(?<=[.!?])\s+", p.text.strip())]
    rng, rows, seen = random.Random(seed), [], set()
    while len(rows) < n:
        picked = rng.sample(range(len(sentences)), rng.choice((2, 3)))
        text = " ".join(sentences[i][1] for i in picked)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"_id": f"demo-{len(rows):06d}", "title": sentences[picked[0]][0], "text": text})
    return rows


def _write_jsonl(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def prepare_corpus(corpus: str | None, docs: int, folder: Path) -> tuple[Path, dict]:
    """(the file every configuration encodes, what it holds). A user corpus is copied (first `docs` rows) into the
    temporary `folder` only, never beside the original."""
    if corpus is None:
        path = folder / "demo_variants.jsonl"
        _write_jsonl(path, demo_variants(docs))
        return path, {"source": "bundled demo corpus (32 passages) recombined into distinct 2-3 sentence passages"}
    if docs == 0:
        return Path(corpus).expanduser(), {"source": str(corpus)}
    rows = [{"_id": r.id, "text": r.text} for r in islice(_records(corpus, docs), docs)]
    if len(rows) < docs:
        raise ValueError(f"--docs {docs}: {corpus} holds only {len(rows)} rows; pass at most that, or 0 for all")
    path = folder / "corpus_head.jsonl"
    _write_jsonl(path, rows)  # the embedded text ("title. text"), so the actors embed the same strings
    return path, {"source": f"{corpus} (first {docs} rows)"}


def _records(path, shard_size: int):
    """The corpus's records shard by shard, exactly as the Ray workers read and embed them."""
    from .shards import plan_shards, read_shard
    for shard in plan_shards(path, shard_size, "documents")[1]:
        yield from read_shard(shard, "documents")


def corpus_texts(path: Path, shard_size: int) -> tuple[list[str], list[str]]:
    """(ids, texts) exactly as the Ray workers read and embed them."""
    records = list(_records(path, shard_size))
    return [r.id for r in records], [r.text for r in records]


# ---- the machine --------------------------------------------------------------------------------------------------
def _cpu_times() -> list[int] | None:
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def cpu_share(before: list[int] | None, after: list[int] | None) -> dict | None:
    """How the whole machine's CPU time went between two /proc/stat readings, in percent: busy (any process,
    ours and the other jobs'), idle, and stolen by the hypervisor."""
    if not before or not after:
        return None
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta[:8]) or 1
    idle = delta[3] + delta[4]
    steal = delta[7] if len(delta) > 7 else 0
    return {"busy_pct": round(100 * (total - idle - steal) / total, 1), "idle_pct": round(100 * idle / total, 1),
            "steal_pct": round(100 * steal / total, 1)}


def machine() -> dict:
    """The shared description, plus Ray's version (None: Ray runs are refused with the pip command)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return describe() | {"ray": version("ray")}
    except PackageNotFoundError:
        return describe() | {"ray": None}


class LoadWindow:
    """Load average and CPU shares over one configuration, so a slow figure can be told from a busy machine."""

    def __enter__(self):
        self.load_before, self.cpu_before = load_average(), _cpu_times()
        return self

    def __exit__(self, *exc):
        self.record = {"load_average_before": self.load_before, "load_average_after": load_average(),
                       "cpu": cpu_share(self.cpu_before, _cpu_times())}
