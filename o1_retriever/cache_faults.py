"""What a thought-cache file is, and what went wrong with one: the header check that refuses a file that is not a
cache, SQLite's errors sorted into the faults `cache_file.ThoughtCacheFile` answers, and a file's identity (which tells
a file moved aside and replaced)."""
from __future__ import annotations

import os
from pathlib import Path

APPLICATION_ID = 0x4F315443  # "O1TC" in the header's application_id: marks a file as a thought cache
_HEADER = b"SQLite format 3\x00"
# SQLite primary result codes (error.sqlite_errorcode & 0xFF)
_BUSY, _CORRUPT = {5, 6}, {11, 26}  # BUSY, LOCKED; CORRUPT, NOTADB
_CANNOT_WRITE = {3, 8, 13, 14}  # PERM, READONLY, FULL, CANTOPEN


def fault(error: Exception) -> str:
    """'busy', 'readonly', 'corrupt' or 'other', from SQLite's own result code (its message as a fallback)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        code &= 0xFF
        return ("busy" if code in _BUSY else "corrupt" if code in _CORRUPT
                else "readonly" if code in _CANNOT_WRITE else "other")
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        return "busy"
    if "malformed" in text or "not a database" in text:
        return "corrupt"
    return "readonly" if "readonly" in text or "unable to open" in text else "other"


def check_is_cache(path: Path) -> None:
    """Refuse a path that holds something other than a thought cache. Only the header is read: a file we did not
    create stays exactly as it was."""
    if path.is_dir():
        raise ValueError(f"thought cache path {str(path)!r} is a directory; pass a file path inside it "
                         f"(e.g. {str(path / 'thoughts.sqlite')!r}) or thought_cache=False")
    if not path.exists() or path.stat().st_size == 0:  # a new (or never written) file: nothing to lose
        return
    with path.open("rb") as f:
        head = f.read(100)
    if not head.startswith(_HEADER) and not _HEADER.startswith(head):  # a prefix: a database cut short, ours to mend
        raise ValueError(f"thought cache path {str(path)!r} exists and is not a SQLite database (it starts "
                         f"{head[:16]!r}); refusing to touch it. Pass another path, or thought_cache=False")
    app_id = int.from_bytes(head[68:72], "big") if len(head) >= 72 else 0
    if app_id not in (0, APPLICATION_ID):  # 0: a cache made before the id was set, or a bare database
        raise ValueError(f"{str(path)!r} is another application's SQLite database (application_id {app_id:#x}), "
                         "not a thought cache; refusing to touch it. Pass another path, or thought_cache=False")


def file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None where there is none: tells a file moved aside and replaced."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
