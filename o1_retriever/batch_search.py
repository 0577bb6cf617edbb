"""`search --queries FILE`: many queries against one index, written as JSON lines or a TREC run.

The formats are the ones retrieval tools already exchange: BEIR's `queries.jsonl` or MS MARCO's `queries.tsv` in,
a TREC run (`qid Q0 docid rank score tag`, what trec_eval, ranx and Pyserini read) or one JSON object per query out.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from .corpus import read_jsonl
from .display import bars_shown

# Queries think and search this many at a time: output is written as each chunk finishes, so an interrupted run keeps
# every finished query's lines, and one chunk's vectors stay small.
CHUNK = 64
RUN_TAG = "o1-retriever"


def _checked(path: Path, n: int, qid, text) -> tuple[str, str]:
    if isinstance(qid, bool) or not isinstance(qid, (str, int)) or not str(qid).strip():
        raise ValueError(f"{path}:{n}: a query id must be a non-empty string (or an integer), got {qid!r:.60}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{path}:{n}: query {qid!r} has no text")
    return str(qid), text


def _tsv_rows(path: Path):
    with path.open(encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("\t", 1)
            if len(parts) != 2:
                raise ValueError(f"{path}:{n}: expected `id<TAB>text`, got {line.strip()[:80]!r}")
            yield n, parts[0], parts[1]


def read_queries(path) -> list[tuple[str, str]]:
    """(id, text) of each query in a BEIR `.jsonl` (`_id`, `text`) or a `.tsv` (`id<TAB>text`) file."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = ((n, obj.get("_id"), obj.get("text")) for n, obj in read_jsonl(path))
    elif suffix == ".tsv":
        if path.is_dir():
            raise ValueError(f"--queries {path} is a directory; expected a queries file")
        if not path.is_file():
            raise FileNotFoundError(f"--queries {path} does not exist")
        rows = _tsv_rows(path)
    else:
        raise ValueError(f"--queries {path}: expected a .jsonl file (BEIR: one {{'_id', 'text'}} per line) or a .tsv "
                         "file (id<TAB>text per line)")
    queries, seen = [], {}
    for n, qid, text in rows:
        qid, text = _checked(path, n, qid, text)
        if qid in seen:
            raise ValueError(f"{path}:{n}: duplicate query id {qid!r} (first at line {seen[qid]})")
        seen[qid] = n
        queries.append((qid, text))
    if not queries:
        raise ValueError(f"--queries {path} holds no queries")
    return queries


def _lines(qid: str, text: str, hits: list, trec: bool) -> str:
    if trec:  # ids with whitespace would split a TREC line's fields: trec_eval and ranx read them as other columns
        return "".join(f"{qid} Q0 {h.id} {rank} {h.score:.6f} {RUN_TAG}\n" for rank, h in enumerate(hits, 1))
    row = {"query_id": qid, "query": text, "thoughts": hits[0].thoughts if hits else [],
           "hits": [{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in hits]}
    return json.dumps(row, ensure_ascii=False) + "\n"


def check_trec_ids(queries: list[tuple[str, str]]) -> None:
    """A query id with whitespace cannot be written in a TREC run; refused before any thinking."""
    for qid, _ in queries:
        if qid.split() != [qid]:
            raise ValueError(f"query id {qid!r} holds whitespace, which a TREC run cannot carry: use --json output "
                             "(without --trec) or ids without spaces")


def search_all(index, queries: list[tuple[str, str]], *, top_k: int, k: int, hybrid, where, trec: bool,
               out=None) -> int:
    """Search every query, writing each chunk's lines to `out` (stdout) as it finishes; the number of queries done.
    With `trec`, the caller has checked the query ids (`check_trec_ids`, before any model loads)."""
    out = out or sys.stdout
    done = 0
    bar = tqdm(total=len(queries), desc="Searching", unit="query",
               disable=not bars_shown() or len(queries) <= CHUNK)
    try:
        for start in range(0, len(queries), CHUNK):
            chunk = queries[start:start + CHUNK]
            results = index.search([text for _, text in chunk], top_k=top_k, k=k, hybrid=hybrid, where=where,
                                   show_progress_bar=False)
            for (qid, text), hits in zip(chunk, results):
                if trec and any(h.id.split() != [h.id] for h in hits):
                    bad = next(h.id for h in hits if h.id.split() != [h.id])
                    raise ValueError(f"document id {bad!r} holds whitespace, which a TREC run cannot carry: use the "
                                     "JSON lines output (without --trec)")
                out.write(_lines(qid, text, hits, trec))
            out.flush()
            done += len(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()
    return done
