"""Readers for BEIR directories and JSONL triplets, with errors that name the file and line.

Skipped items are never silent: one warning per kind, with the count and the first few ids.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from o1_retriever.corpus import read_jsonl  # the project's one JSONL reader
from o1_retriever.evaluation.data import document_text, qrels_path, read_beir_jsonl, read_qrels


@dataclass
class BeirData:
    corpus: dict[str, str]                       # doc id -> "title text"
    queries: dict[str, str]                      # query id -> text
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # query id -> {doc id: grade}


@dataclass
class LabeledPair:
    query_id: str
    query: str
    positive_ids: list[str]


@dataclass
class TrainRecord:
    query: str
    pos: list[str]
    neg: list[str]
    thought: str | None = None
    line: int = 0


def _warn_skipped(what: str, items: list) -> None:
    if items:
        shown = ", ".join(map(str, items[:5])) + (", ..." if len(items) > 5 else "")
        warnings.warn(f"skipped {len(items)} {what}: {shown}", UserWarning, stacklevel=3)


def _field(obj: dict, key: str, path: Path, n: int, kinds=(str,)):
    if key not in obj:
        raise ValueError(f"{path}:{n}: missing field {key!r} (has {sorted(obj)})")
    if not isinstance(obj[key], kinds):
        raise ValueError(f"{path}:{n}: field {key!r} must be {'/'.join(k.__name__ for k in kinds)}, "
                         f"got {type(obj[key]).__name__}")
    return obj[key]


def load_beir(directory, split: str | None = "train") -> BeirData:
    """corpus.jsonl (_id, title, text), queries.jsonl (_id, text), qrels/<split>.tsv, read by the evaluation
    loader's readers (same formats, same `file:line:` errors). Unlike evaluation, training is lenient about
    the cross-references: empty documents are dropped and `labeled_pairs` skips, with counted warnings,
    what cannot be used."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"BEIR directory {root} does not exist")
    corpus = {}
    for row in read_beir_jsonl(root / "corpus.jsonl", "document", ("_id",)):
        text = document_text(row)
        if text:
            corpus[row["_id"]] = text
    queries = {row["_id"]: row["text"] for row in read_beir_jsonl(root / "queries.jsonl", "query", ("_id", "text"))}
    bad = [q for q, t in queries.items() if not isinstance(t, str)]
    if bad:
        raise ValueError(f"{root / 'queries.jsonl'}: field 'text' must be a string, not for query id(s) {bad[:5]}")
    data = BeirData(corpus, queries)
    if split is not None:
        data.qrels = read_qrels(qrels_path(root, split))
    return data


def labeled_pairs(data: BeirData, source: str | None = None) -> list[LabeledPair]:
    """Queries of the split with their relevant passages; skips (with counted warnings, naming `source` where given)
    qrels whose query is unknown, positives missing from the corpus, and queries left without any positive."""
    if not data.qrels:
        raise ValueError("no qrels loaded: the split has no relevance judgements to synthesize or train from")
    unknown_queries = [q for q in data.qrels if q not in data.queries]
    missing_docs, no_positive, pairs = [], [], []
    for qid, judged in data.qrels.items():
        if qid not in data.queries:
            continue
        pos = []
        for did, grade in judged.items():
            if grade <= 0:
                continue
            if did not in data.corpus:
                missing_docs.append(f"{qid}->{did}")
            else:
                pos.append(did)
        if pos:
            pairs.append(LabeledPair(qid, data.queries[qid], pos))
        else:
            no_positive.append(qid)
    where = f" of {source}" if source else ""
    _warn_skipped(f"qrels{where} whose query id is not in queries.jsonl", unknown_queries)
    _warn_skipped(f"positives{where} whose passage id is not in the corpus", missing_docs)
    _warn_skipped(f"queries{where} without any positive passage in the corpus", no_positive)
    if not pairs:
        raise ValueError("no usable (query, positive passage) pairs: every query was skipped (see warnings)")
    return pairs


def text_list(obj, key, path, n) -> list[str]:
    value = obj.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{path}:{n}: field {key!r} must be a string or a list of strings")
    return [v for v in value if v.strip()]


def load_triplets(path, max_examples: int | None = None) -> list[TrainRecord]:
    """JSONL records {query, pos, neg, thought?}; pos/neg are a string or a list of strings.
    Records without a positive are skipped with a counted warning."""
    path = Path(path)
    records, no_positive = [], []
    for n, obj in read_jsonl(path):
        query = _field(obj, "query", path, n)
        if not query.strip():
            raise ValueError(f"{path}:{n}: field 'query' is empty")
        thought = obj.get("thought")
        if thought is not None and not isinstance(thought, str):
            raise ValueError(f"{path}:{n}: field 'thought' must be a string or null")
        pos = text_list(obj, "pos", path, n)
        if not pos:
            no_positive.append(f"line {n}")
            continue
        records.append(TrainRecord(query, pos, text_list(obj, "neg", path, n), thought, n))
        if max_examples and len(records) >= max_examples:
            break
    _warn_skipped(f"records in {path} without a positive passage", no_positive)
    if not records:
        raise ValueError(f"{path} holds no usable training records (need 'query' and a non-empty 'pos')")
    return records
