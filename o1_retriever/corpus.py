"""Reading corpora: JSONL with `_id` and `text` (optional `title`, other keys become metadata)."""
from __future__ import annotations

import argparse
import atexit
import json
import math
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

DEMO_CORPUS = Path(__file__).parent / "data" / "demo_corpus.jsonl"
DEMO_QUERIES = Path(__file__).parent / "data" / "demo_queries.jsonl"


@dataclass
class Passage:
    id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def full_text(self) -> str:
        """Title and text, as BEIR-style retrievers embed them."""
        return f"{self.title}. {self.text}" if self.title else self.text


def read_jsonl(path: str | Path):
    """Yield (line number, dict), skipping blank lines; a malformed line is a ValueError naming file and line."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected a JSONL file (one JSON object per line)")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:  # a byte-order mark, as some Windows editors save UTF-8, is not part of the first object
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                                 "save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}): {line.strip()[:80]!r}; a JSONL file holds "
                                 "one JSON object per line") from None
            if not isinstance(obj, dict):  # a JSON array of objects, say: JSONL puts each on its own line
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}; a JSONL file holds "
                                 "one JSON object per line")
            yield n, obj


def read_corpus(path: str | Path) -> list[Passage]:
    """Parse a corpus JSONL; a malformed line raises ValueError naming the file and line number."""
    passages, seen = [], set()
    dropped: dict[str, int] = {}  # metadata key -> first line where its value could not be kept
    for n, row in read_jsonl(path):
        for key in ("_id", "text"):
            if key not in row:
                raise ValueError(f"{path}:{n}: missing required key {key!r} (need '_id' and 'text')")
        if isinstance(row["_id"], bool) or not isinstance(row["_id"], (str, int)) or not str(row["_id"]).strip():
            raise ValueError(f"{path}:{n}: '_id' must be a non-empty string (or an integer), got {row['_id']!r:.60}")
        pid, text = str(row["_id"]), row["text"]
        if not isinstance(text, str) or not (text.strip() or str(row.get("title") or "").strip()):
            raise ValueError(f"{path}:{n}: 'text' must be a non-empty string")
        if pid in seen:
            raise ValueError(f"{path}:{n}: duplicate _id {pid!r}")
        seen.add(pid)
        meta = {}
        for k, v in row.items():
            if k in ("_id", "text", "title"):
                continue
            if isinstance(v, (str, int, float, bool)) and not (isinstance(v, float) and not math.isfinite(v)):
                meta[k] = v
            else:  # Chroma keeps only finite scalars: say what is left out instead of dropping it silently
                dropped.setdefault(k, n)
        passages.append(Passage(pid, text, str(row.get("title") or ""), meta))
    if not passages:
        raise ValueError(f"{path} holds no passages")
    if dropped:
        warnings.warn(f"{path}: metadata field(s) {sorted(dropped)} are not kept (only str, int, float and bool "
                      f"values are; first at line {min(dropped.values())}): flatten them into scalar fields to keep "
                      "them", UserWarning, stacklevel=2)
    return passages


@dataclass
class DemoQuery:
    id: str
    text: str
    relevant: set[str]


def demo_queries() -> list[DemoQuery]:
    """The bundled queries over DEMO_CORPUS, each with the ids of the passages that answer it."""
    return [DemoQuery(row["_id"], row["text"], set(row["relevant"])) for _, row in read_jsonl(DEMO_QUERIES)]


def demo_arguments(description: str, temp_prefix: str) -> argparse.Namespace:
    """The flags the examples share (--k, --queries, --max-new-tokens, --persist-dir); without --persist-dir the
    Chroma folder is a fresh temporary one named `temp_prefix...`."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--k", type=int, default=3, help="thoughts per query")
    parser.add_argument("--queries", type=int, default=3, help="how many demo queries to run")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="length of each thought, in tokens")
    parser.add_argument("--persist-dir", default=None, help="Chroma folder (default: a fresh temporary one)")
    args = parser.parse_args()
    if args.persist_dir is None:  # removed at exit: a run leaves nothing behind in the temp folder
        args.persist_dir = tempfile.mkdtemp(prefix=temp_prefix)
        atexit.register(shutil.rmtree, args.persist_dir, ignore_errors=True)
    return args
