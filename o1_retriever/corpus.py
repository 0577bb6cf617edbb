"""Reading corpora: JSONL with `_id` and `text` (optional `title`, other keys become metadata)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

DEMO_CORPUS = Path(__file__).parent / "data" / "demo_corpus.jsonl"


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
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}): {line.strip()[:80]!r}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            yield n, obj


def read_corpus(path: str | Path) -> list[Passage]:
    """Parse a corpus JSONL; a malformed line raises ValueError naming the file and line number."""
    passages, seen = [], set()
    for n, row in read_jsonl(path):
        for key in ("_id", "text"):
            if key not in row:
                raise ValueError(f"{path}:{n}: missing required key {key!r} (need '_id' and 'text')")
        pid, text = str(row["_id"]), row["text"]
        if not isinstance(text, str) or not (text.strip() or str(row.get("title", "")).strip()):
            raise ValueError(f"{path}:{n}: 'text' must be a non-empty string")
        if pid in seen:
            raise ValueError(f"{path}:{n}: duplicate _id {pid!r}")
        seen.add(pid)
        meta = {k: v for k, v in row.items() if k not in ("_id", "text", "title")
                and isinstance(v, (str, int, float, bool))}
        passages.append(Passage(pid, text, str(row.get("title") or ""), meta))
    if not passages:
        raise ValueError(f"{path} holds no passages")
    return passages
