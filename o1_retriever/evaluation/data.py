"""BEIR-format datasets: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv` (read by qrels.py).

Errors name the file and line (`file:line:`), so a malformed download is quick to fix.
Only judged queries (those with qrels in the split) are kept, as BEIR evaluates them.
"""
from __future__ import annotations

import hashlib
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

# the qrels reader lives in qrels.py; its names are still importable from here, as the training package does
from .qrels import check_header, parse_qrels, qrels_path, read_qrels  # noqa: F401


@dataclass
class BeirDataset:
    """One split of a BEIR dataset, ready to evaluate."""
    path: Path
    split: str
    corpus: dict[str, dict[str, str]]          # doc id -> {"title": ..., "text": ...}
    queries: dict[str, str]                    # judged query id -> text
    qrels: dict[str, dict[str, int]]           # query id -> {doc id: relevance}
    digest: str                                # sha256 of the three source files (first 16 hex)
    subsample: dict | None = None              # set by `subsample_corpus`
    query_subsample: dict | None = None        # set by `subsample_queries`

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def docs_sampled(self) -> bool:
        """True when `subsample_corpus` left documents out (a cap above the corpus size keeps them all)."""
        return self.subsample is not None and self.subsample["docs_kept"] < self.subsample["docs_total"]

    @property
    def queries_sampled(self) -> bool:
        """True when `subsample_queries` left judged queries out."""
        return self.query_subsample is not None and \
            self.query_subsample["queries_kept"] < self.query_subsample["queries_total"]

    @property
    def subsampled(self) -> bool:
        """True when the corpus or the queries are a sample: such figures are not full-split ones. A cap the split
        fits under (--max-queries 1000 on 300 queries) leaves a full-split figure."""
        return self.docs_sampled or self.queries_sampled

    def doc_ids(self) -> list[str]:
        return list(self.corpus)

    def doc_texts(self) -> list[str]:
        """`title text` per document (BEIR's convention for dense models and for BM25); EMPTY_TEXT for a document
        with neither."""
        return [document_text(d) or EMPTY_TEXT for d in self.corpus.values()]

    def judged_doc_ids(self) -> set[str]:
        return {doc for rels in self.qrels.values() for doc in rels}


# What an empty document is embedded and indexed as: every text an encoder takes must have content, and a lone
# punctuation mark gives BM25 no term (it never matches) and the dense side a near-empty passage, as BEIR's " ".
EMPTY_TEXT = "."


def document_text(doc: dict) -> str:
    return f"{doc.get('title') or ''} {doc.get('text') or ''}".strip()


def read_beir_jsonl(path: Path, what: str, required: tuple[str, ...]) -> list[dict]:
    """The project's one JSONL reader (`corpus.read_jsonl`, errors as `file:line:`) plus BEIR's field rules."""
    from ..corpus import read_jsonl
    rows, seen = [], set()
    for lineno, row in read_jsonl(path):
        for key in required:
            if key not in row:
                raise ValueError(f"{path}:{lineno}: missing field {key!r} (a {what} needs {list(required)})")
        if isinstance(row["_id"], bool) or not isinstance(row["_id"], (str, int)) or not str(row["_id"]).strip():
            # str() would make null "None" and 1.0 "1.0": ids no qrels line names
            raise ValueError(f"{path}:{lineno}: _id must be a non-empty string or an integer, got {row['_id']!r}")
        row["_id"] = str(row["_id"])
        if row["_id"] in seen:
            raise ValueError(f"{path}:{lineno}: duplicate _id {row['_id']!r}")
        seen.add(row["_id"])
        for key in ("title", "text"):
            if key in row and row[key] is not None and not isinstance(row[key], str):
                raise ValueError(f"{path}:{lineno}: field {key!r} must be a string, got {type(row[key]).__name__}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} has no {what} rows")
    return rows


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def beir_files(path, split: str) -> tuple[Path, Path, Path]:
    """(corpus, queries, qrels) of one split of a BEIR folder, checked to exist without reading them;
    FileNotFoundError naming the missing one (and, for qrels, the splits that exist)."""
    root = Path(path).expanduser()
    if root.is_file():  # a path to one of its files, say corpus.jsonl
        raise NotADirectoryError(f"BEIR folder {root} is a file: name the folder that holds corpus.jsonl, "
                                 f"queries.jsonl and qrels/<split>.tsv (here perhaps {root.parent})")
    if not root.is_dir():
        raise FileNotFoundError(f"BEIR folder {root} does not exist (expected corpus.jsonl, queries.jsonl and "
                                "qrels/<split>.tsv)")
    corpus_file, queries_file = root / "corpus.jsonl", root / "queries.jsonl"
    for f in (corpus_file, queries_file):
        if not f.is_file():
            # BEIR's download_and_unzip leaves datasets/scifact/...: naming datasets/ is an easy slip
            inside = sorted(p.parent.name for p in root.glob("*/corpus.jsonl"))
            hint = f"; the BEIR folders in it: {inside[:5]}, e.g. {root / inside[0]}" if inside else ""
            raise FileNotFoundError(f"{f} is missing: a BEIR dataset needs corpus.jsonl and queries.jsonl{hint}")
    return corpus_file, queries_file, qrels_path(root, split)


def load_beir(path, split: str = "test") -> BeirDataset:
    """Load one split; raises FileNotFoundError naming the missing file and the splits that exist."""
    root = Path(path).expanduser()
    corpus_file, queries_file, qrels_file = beir_files(root, split)
    corpus = {r["_id"]: {"title": r.get("title") or "", "text": r.get("text") or ""}
              for r in read_beir_jsonl(corpus_file, "document", ("_id",))}
    all_queries = {r["_id"]: r["text"] for r in read_beir_jsonl(queries_file, "query", ("_id", "text"))}
    qrels, header = parse_qrels(qrels_file)
    check_header(header, qrels_file, all_queries, corpus)
    unknown = sorted(set(qrels) - set(all_queries))
    if unknown:
        raise ValueError(f"{qrels_file} judges {len(unknown)} query id(s) missing from {queries_file}: {unknown[:5]}")
    missing_docs = {d for rels in qrels.values() for d in rels} - set(corpus)
    relevant = {d for rels in qrels.values() for d, r in rels.items() if r > 0}
    if relevant and relevant <= missing_docs:  # every figure would be 0, found only after every model has run
        raise ValueError(f"{qrels_file}: none of the {len(relevant)} document(s) judged relevant is in {corpus_file}, "
                         f"e.g. {sorted(relevant)[:3]}: a corpus of another dataset or version?")
    if missing_docs:
        # They stay in the qrels (BEIR keeps them: they can never be retrieved, so they lower recall).
        warnings.warn(f"{qrels_file} judges {len(missing_docs)} document id(s) absent from the corpus, "
                      f"e.g. {sorted(missing_docs)[:3]}", stacklevel=2)
    empty = [i for i, d in corpus.items() if not document_text(d)]
    if empty:  # BEIR and Pyserini keep them: qrels may point at them, and they still count in the corpus size
        warnings.warn(f"{corpus_file}: {len(empty)} document(s) have neither title nor text, e.g. {empty[:3]}; kept "
                      f"(embedded and indexed as {EMPTY_TEXT!r}: no BM25 term, a near-empty passage)", stacklevel=2)
    queries = {q: all_queries[q] for q in qrels}
    blank = [q for q, t in queries.items() if not isinstance(t, str) or not t.strip()]
    if blank:
        raise ValueError(f"{queries_file}: judged query id(s) {blank[:5]} have empty text")
    return BeirDataset(root, split, corpus, queries, qrels, _digest([corpus_file, queries_file, qrels_file]))


def subsample_corpus(dataset: BeirDataset, max_docs: int, seed: int = 0) -> BeirDataset:
    """Keep every judged document plus a seeded random sample of the rest, `max_docs` in all: every judged one even
    when they alone exceed it (the figure would be meaningless otherwise). `subsample` records how many were kept."""
    if isinstance(max_docs, bool) or not isinstance(max_docs, int) or max_docs <= 0:
        raise ValueError(f"max_docs must be a positive int, got {max_docs!r}")
    judged = dataset.judged_doc_ids() & set(dataset.corpus)
    others = sorted(set(dataset.corpus) - judged)
    room = max(0, max_docs - len(judged))
    picked = set(random.Random(seed).sample(others, min(room, len(others))))
    keep = judged | picked
    corpus = {i: d for i, d in dataset.corpus.items() if i in keep}  # original order, for stable hashes
    record = {"max_docs": max_docs, "seed": seed, "docs_total": len(dataset.corpus), "docs_kept": len(corpus),
              "judged_docs_kept": len(judged)}
    return BeirDataset(dataset.path, dataset.split, corpus, dataset.queries, dataset.qrels, dataset.digest, record,
                       dataset.query_subsample)


def subsample_queries(dataset: BeirDataset, max_queries: int, seed: int = 0) -> BeirDataset:
    """A seeded sample of the judged queries (and their qrels), for quick runs on slow hardware. The corpus is
    untouched; the `query_subsample` record keeps the figure from passing for a full one."""
    if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries <= 0:
        raise ValueError(f"max_queries must be a positive int, got {max_queries!r}")
    ids = sorted(dataset.queries)
    keep = set(random.Random(seed).sample(ids, min(max_queries, len(ids))))
    queries = {q: t for q, t in dataset.queries.items() if q in keep}
    qrels = {q: rels for q, rels in dataset.qrels.items() if q in keep}
    record = {"max_queries": max_queries, "seed": seed, "queries_total": len(ids), "queries_kept": len(queries)}
    return BeirDataset(dataset.path, dataset.split, dataset.corpus, queries, qrels, dataset.digest,
                       dataset.subsample, record)


def corpus_digest(ids: list[str], texts: list[str]) -> str:
    """Hash of exactly what gets embedded (ids and texts, in order): the embedding cache key."""
    h = hashlib.sha256()
    for i, t in zip(ids, texts):
        h.update(i.encode() + b"\0" + t.encode() + b"\1")
    return h.hexdigest()[:16]
