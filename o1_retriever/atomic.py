"""Writing files and directories so that no reader ever sees half of one."""
from __future__ import annotations

import glob
import os
import re
import shutil
import sys
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
    temporary = target.with_name(_temporary_name(target.name, uuid.uuid4().hex))
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


def _temporary_name(target_name: str, token: str) -> str:
    return f".{target_name}.{token}.tmp"


def leftover_temporaries(target: str | os.PathLike) -> list[Path]:
    """The temporaries `atomic_path(target)` writers left beside `target`, and nothing else: a plain glob
    `.{name}.*.tmp` would also catch a sibling's (`name.Q4_1`'s), written under another lock by a live writer."""
    target = Path(target)
    prefix, suffix = _temporary_name(target.name, "\0").split("\0")  # no file name holds a NUL
    shape = re.compile(re.escape(prefix) + "[0-9a-f]{32}" + re.escape(suffix))  # uuid4().hex
    return [p for p in target.parent.glob(glob.escape(prefix) + "*" + glob.escape(suffix)) if shape.fullmatch(p.name)]


@contextmanager
def sole_writer(out: Path, done):
    """Yields whether `out` is still to be written (`done()` false); when it is, the block runs as the only writer of
    `out` across processes, after whatever a killed writer left (its hidden temporary, written by `atomic_path`) is
    removed: a model-sized leftover per kill otherwise, and N processes starting at once would each build a copy."""
    if done():
        yield False
        return
    from filelock import FileLock, Timeout

    out = Path(out)
    locks = out.parent.parent / "locks"  # beside the models folder: nothing in it but models
    locks.mkdir(parents=True, exist_ok=True)
    lock = FileLock(locks / f"{out.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:  # say why nothing happens: the other writer may take minutes (a model-sized copy)
        print(f"waiting for another process writing {out}", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        todo = not done()  # another process may have finished it while this one waited
        if todo:
            for leftover in leftover_temporaries(out):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        yield todo
    finally:
        lock.release()


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """`Path(path).write_text(text)` (UTF-8), but all or nothing."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
