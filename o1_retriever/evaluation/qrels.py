"""A BEIR split's judgements: `qrels/<split>.tsv`, tab-separated `query-id corpus-id score`.

Errors name the file and line (`file:line:`). The first line may be a header of column names; a first line whose
score is not a number but whose ids look like ids ("q1 d1 one") is a judgement with a bad score, refused, never
skipped as a header (that judgement would be lost without a word).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Header:
    """The first line, read as column names: kept so that `load_beir` can tell it from a judgement of its ids."""
    lineno: int
    fields: list[str]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Tab-separated `query-id corpus-id score`; a header line of column names is optional (whatever the names), and
    so is a byte-order mark. Scores are integers; a pair judged twice must have the same score both times."""
    return parse_qrels(path)[0]


def parse_qrels(path: Path) -> tuple[dict[str, dict[str, int]], Header | None]:
    """`read_qrels`, and the header line it skipped (None when the file has none)."""
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}  # (query id, doc id) -> the line that judged it first
    first, header = True, None  # the first non-blank line may be a header
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:  # a byte-order mark, as some Windows editors save UTF-8, is not part of the first query id
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 (byte {raw[e.start]:#04x} at column "
                                 f"{e.start + 1}); save the file as UTF-8") from None
            if not line.strip():
                continue
            parts = line.rstrip().split("\t")  # a trailing tab (an empty fourth column) as BEIR's csv reader takes it
            if first and is_header(parts):
                first, header = False, Header(lineno, [p.strip() for p in parts])
                continue
            first = False
            if len(parts) != 3:
                raise ValueError(f"{path}:{lineno}: expected 3 tab-separated columns "
                                 f"(query-id, corpus-id, score), got {len(parts)}{_columns_hint(parts)}: "
                                 f"{line.strip()!r:.80}")
            qid, did, score = (p.strip() for p in parts)
            if not qid or not did:
                raise ValueError(f"{path}:{lineno}: empty {'query-id' if not qid else 'corpus-id'}: "
                                 f"{line.strip()!r:.80}")
            rel = integer_score(score, f"{path}:{lineno}")
            if rel != qrels.get(qid, {}).get(did, rel):  # which grade counts would otherwise depend on line order
                raise ValueError(f"{path}:{lineno}: ({qid!r}, {did!r}) judged again with score {rel}, "
                                 f"after {qrels[qid][did]} on line {seen[qid, did]}")
            seen.setdefault((qid, did), lineno)
            qrels.setdefault(qid, {})[did] = rel
    if not qrels:
        raise ValueError(f"{path} has no judgements")
    return qrels, header


def integer_score(score: str, where: str) -> int:
    try:
        value = float(score)
    except ValueError:
        value = None
    if value is None or not value.is_integer():  # int() would turn a grade of 0.5 into "not relevant"
        raise ValueError(f"{where}: score must be an integer, got {score!r}")
    return int(value)


def is_header(parts: list[str]) -> bool:
    """Column names: three fields of words without digits ("query-id corpus-id score", "qid docid rel", "Query ID
    ...") and no number for a score. Ids carry digits as a rule ("q1", "MED-10", "4983"): such a line is data, and
    "q1 d1 one" a judgement with a bad score."""
    try:
        float(parts[-1])  # "nan", "inf": numbers, if bad ones
        return False
    except ValueError:
        return len(parts) == 3 and all(_name_like(p) for p in parts)


def _name_like(field: str) -> bool:
    for separator in "-_. ":
        field = field.replace(separator, "")
    return field.isalpha()


def check_header(header: Header | None, path: Path, query_ids, doc_ids) -> None:
    """A "header" that names a query and a document of the dataset (ids without digits, "abc def one") is a
    judgement whose score is not a number: refused, not skipped."""
    if header is not None and header.fields[0] in query_ids and header.fields[1] in doc_ids:
        integer_score(header.fields[2], f"{path}:{header.lineno}")  # raises: a name-like field is no number


def _columns_hint(parts: list[str]) -> str:
    if any("\r" in p for p in parts):  # classic Mac line endings: the whole file reads as one line
        return " (lines end in a bare carriage return '\\r'? save the file with '\\n' line endings)"
    if len(parts) == 4 and parts[1].strip() in ("0", "Q0"):
        return " (TREC qrels `query 0 doc score`? drop the second column)"
    if len(parts) == 1 and len(parts[0].split()) in (3, 4):
        return " (separated by spaces? BEIR qrels separate columns with tabs)"
    return ""


def qrels_path(root: Path, split: str) -> Path:
    """`root/qrels/<split>.tsv`; FileNotFoundError naming the splits that do exist."""
    path = Path(root) / "qrels" / f"{split}.tsv"
    if not path.is_file():
        if not path.parent.is_dir():
            available = f"none (no folder {path.parent})"
        else:
            available = sorted(p.stem for p in path.parent.glob("*.tsv")) or f"none ({path.parent} holds no .tsv file)"
        raise FileNotFoundError(f"no qrels for split {split!r}: {path} is missing; splits available: {available}")
    return path
