"""Input and output shards: what a distributed run reads, writes, and finds already written.

Inputs (JSONL or Parquet, one file or a folder of them) are cut into shards of `shard_size` rows in file order: the
same files and size always give the same shards, so a shard is the unit of work, of output and of resume. Each
output shard is one Parquet file (`id`, `vector`, `text_hash`, plus `thoughts` for queries), written whole under a
temporary name and renamed: a file with the shard's name is complete, so a re-run skips it and a retried shard
replaces it instead of adding rows. `o1_vectors.json` beside the shards records the plan. Here: the shards and
reading the input; writing shards and the manifest: `outputs.py`.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import math
import os
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

KINDS = ("documents", "queries")
ID_COLUMNS = ("_id", "id")
_SKIP_PREFIXES = (".", "_")  # hidden files and markers such as _SUCCESS in a folder of shards
FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}  # in a folder, by suffix


@dataclass(frozen=True)
class Shard:
    """Rows [start, stop) of one input file. For JSONL, `offset` is the byte where row `start` begins and `line`
    its line number, so a worker seeks straight there (Parquet: 0 and 1)."""
    name: str
    path: str
    format: str
    start: int
    stop: int
    offset: int
    line: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Record:
    id: str
    text: str  # what is embedded: "title. text" for a document with a title (as `o1-retriever index`), else text
    metadata: dict | None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_files(path: str | os.PathLike) -> list[tuple[Path, str]]:
    """(file, format) for a JSONL or Parquet file, or for every such file under a folder (sorted, recursive;
    names starting with '.' or '_' are skipped)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist; pass a JSONL or Parquet file or a folder of them")
    if path.is_file():
        return [(path, "parquet" if path.suffix == ".parquet" else "jsonl")]
    if (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file():  # as `eval --dataset` takes it
        raise ValueError(f"{str(path)!r} is a BEIR dataset folder: its queries.jsonl would be read as rows too; pass "
                         f"{str(path / 'corpus.jsonl')!r} (or, for queries, its queries.jsonl)")
    found = [(file, FORMATS[file.suffix]) for file in sorted(path.rglob("*"))
             if file.suffix in FORMATS and file.is_file()
             and not any(p.startswith(_SKIP_PREFIXES) for p in file.relative_to(path).parts)]
    if not found:
        raise ValueError(f"{str(path)!r} holds no .jsonl or .parquet file")
    return found


def _jsonl_lines(path, offset: int = 0, line: int = 1):
    """(row dict, byte offset, line number) for each non-blank line from byte `offset` (where line number `line`
    begins); a bad line is a ValueError naming file:line."""
    with open(path, "rb") as f:
        f.seek(offset)
        for line_number, raw in enumerate(f, line):
            size = len(raw)
            if offset == 0:  # a byte-order mark, as some Windows editors save UTF-8 (read_corpus skips it too)
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if raw.strip():
                yield _parse_line(raw, f"{path}:{line_number}"), offset, line_number
            offset += size


def _parse_line(raw: bytes, where: str) -> dict:
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not valid UTF-8; save the file as UTF-8") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg}): {raw.strip()[:80]!r}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row


def _parquet_rows(path: Path):
    """(row dict of the id, text and title columns, 0, 1) for each row: what planning checks, read by column."""
    import pyarrow.parquet as pq
    try:
        file = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid for a file that is not Parquet
        raise ValueError(f"{path}: not a readable Parquet file ({e})") from None
    columns = [c for c in (*ID_COLUMNS, "text", "title") if c in file.schema_arrow.names]
    for batch in file.iter_batches(columns=columns, batch_size=65536):
        for row in batch.to_pylist():
            yield row, 0, 1


def plan_shards(source: str | os.PathLike, shard_size: int, kind: str) -> tuple[list[dict], list[Shard]]:
    """(inputs, shards): each input file's name, format, size in bytes and rows; its shards in order.

    Every row is read and checked here, once, before any worker starts: a bad line or a repeated id fails now,
    naming its place, rather than hours into a run (and a fixed file would not match the shards already written)."""
    from tqdm.auto import tqdm
    inputs, shards, seen = [], [], set()
    root = Path(source).expanduser()
    files = input_files(root)
    total = sum(file.stat().st_size for file, _ in files)
    done = 0
    with tqdm(total=total, unit="B", unit_scale=True, desc="Checking input", disable=total < 64 << 20) as bar:
        for index, (file, fmt) in enumerate(files):
            name = file.name if root.is_file() else file.relative_to(root).as_posix()
            rows, starts = 0, []
            for row, offset, line in (_parquet_rows(file) if fmt == "parquet" else _jsonl_lines(file)):
                where = f"{file}:{line}" if fmt == "jsonl" else f"{file}: row {rows + 1}"
                record = _record(where, row, kind, set())
                if record.id in seen:
                    raise ValueError(f"{where}: duplicate id {record.id!r} (every row needs its own id)")
                seen.add(record.id)
                if rows % shard_size == 0:
                    starts.append((offset, line))
                rows += 1
                if rows % 65536 == 0 and offset:
                    bar.update(done + offset - bar.n)
            done += file.stat().st_size
            bar.update(done - bar.n)
            inputs.append({"name": name, "format": fmt, "bytes": file.stat().st_size, "rows": rows})
            for number, (offset, line) in enumerate(starts):
                start = number * shard_size
                shards.append(Shard(f"part-{index:05d}-{number:06d}.parquet", str(file.resolve()), fmt, start,
                                    min(rows, start + shard_size), offset, line))
    if not shards:
        raise ValueError(f"{str(root)!r} holds no rows")
    return inputs, shards


# ---- reading one shard's rows -----------------------------------------------------------------------------------
def _rows(shard: Shard):
    """(where, dict) for each row of the shard; `where` is `file:line` (JSONL) or `file: row N` (Parquet)."""
    if shard.format == "jsonl":
        taken = 0
        lines = islice(_jsonl_lines(shard.path, shard.offset, shard.line), shard.rows)
        for taken, (row, _, line) in enumerate(lines, 1):
            yield f"{shard.path}:{line}", row
        if taken < shard.rows:
            raise ValueError(f"{shard.path} ended after {taken} of shard {shard.name}'s {shard.rows} rows: the "
                             "file changed since the run was planned; encode it into a new output folder")
        return
    import pyarrow.parquet as pq
    file = pq.ParquetFile(shard.path)
    first = 0
    for group in range(file.metadata.num_row_groups):  # read only the row groups that overlap the shard
        count = file.metadata.row_group(group).num_rows
        lo, hi = max(shard.start, first), min(shard.stop, first + count)
        if lo < hi:
            table = file.read_row_group(group).slice(lo - first, hi - lo)
            for i, row in enumerate(table.to_pylist()):
                yield f"{shard.path}: row {lo + i + 1}", row
        first += count


def _record(where: str, row: dict, kind: str, dropped: set) -> Record:
    """The checks `corpus.read_corpus` makes on a corpus line, for one row of either format."""
    id_column = next((c for c in ID_COLUMNS if c in row), None)
    if id_column is None or "text" not in row:
        raise ValueError(f"{where}: needs an id ('_id' or 'id') and 'text'; it has {sorted(row)[:10]}")
    pid = row[id_column]
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or not str(pid).strip():
        raise ValueError(f"{where}: {id_column!r} must be a non-empty string (or an integer), got {pid!r:.60}")
    text, title = row["text"], str(row.get("title") or "") if kind == "documents" else ""
    if not isinstance(text, str) or not (text.strip() or title.strip()):
        raise ValueError(f"{where}: 'text' must be a non-empty string, got {text!r:.60}")
    if kind == "queries":
        return Record(str(pid), text, None)
    metadata = {}
    for key, value in row.items():
        if key in (id_column, "text", "title"):
            continue
        if isinstance(value, (str, int, float, bool)) and not (isinstance(value, float) and not math.isfinite(value)):
            metadata[key] = value
        else:  # Chroma keeps only finite scalars (as read_corpus, which warns about the same keys)
            dropped.add(key)
    return Record(str(pid), f"{title}. {text}" if title else text, metadata or None)


def read_shard(shard: Shard, kind: str, dropped: set | None = None) -> list[Record]:
    """The shard's records, checked (again: the file may have changed since planning). Metadata keys whose values
    cannot be kept are added to `dropped`."""
    records, seen = [], set()
    dropped = set() if dropped is None else dropped
    for where, row in _rows(shard):
        record = _record(where, row, kind, dropped)
        if record.id in seen:
            raise ValueError(f"{where}: duplicate id {record.id!r}")
        seen.add(record.id)
        records.append(record)
    return records


# The output side, defined in outputs.py, stays importable from here (read on first use: outputs imports this module).
_OUTPUTS = ("MANIFEST", "MANIFEST_VERSION", "METADATA_KEY", "write_shard", "shard_info", "remove_temporaries",
            "read_manifest", "write_manifest", "manifest_shards", "shard_dicts")


def __getattr__(name: str):
    if name in _OUTPUTS:
        from . import outputs
        return getattr(outputs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
