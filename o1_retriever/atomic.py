"""Writing files and directories so that no reader ever sees half of one."""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary path beside `target` to write a file or a directory into; when the block ends without an
    error it takes `target`'s place in one rename, so a reader, or a later run after a kill mid-write, finds the
    whole thing or nothing. A directory another process completed first is kept (theirs is as good as ours). The
    temporary is removed whatever happens; its name is hidden and ends in `.tmp`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temporary
        try:
            os.replace(temporary, target)
        except OSError:
            if not (temporary.is_dir() and target.is_dir()):
                raise
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """`Path(path).write_text(text)` (UTF-8), but all or nothing."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
