"""Output folders written all or nothing, and what a killed writer left beside them.

`o1_retriever.atomic.atomic_path` renames a finished temporary into place; these add what a training command needs
around it: the hidden temporaries an earlier, killed run left (a corpus- or model-sized copy per kill) removed
before writing again, and a folder that replaces the one already there, not only an empty one.
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from o1_retriever.atomic import atomic_path, leftover_temporaries


def remove_leftovers(target) -> None:
    """The hidden temporaries `atomic_path(target)` writers that were killed left beside `target`."""
    for leftover in leftover_temporaries(target):
        _remove(leftover)


def set_aside(target) -> Path | None:
    """`target` renamed out of the way under a hidden temporary's name (so a kill leaves it to `remove_leftovers`),
    for the caller to put back or remove; None when there is nothing there. Earlier leftovers are removed first."""
    target = Path(target)
    remove_leftovers(target)
    if not (target.exists() or target.is_symlink()):
        return None
    aside = _aside_name(target)
    os.rename(target, aside)
    return aside


def _aside_name(target: Path) -> Path:
    """A name `remove_leftovers` takes for a killed writer's: what is moved aside is cleaned up after a kill."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


@contextmanager
def replaced_folder(target) -> Iterator[Path]:
    """A new, empty folder beside `target` to write into; when the block ends without an error it takes
    `target`'s place, replacing what was there. A reader, or a re-run after a kill, finds the old folder whole,
    the new one whole, or none (a kill between the two renames): never half of one, nor a mix of both."""
    target = Path(target)
    remove_leftovers(target)
    aside = None
    try:
        with atomic_path(target) as folder:
            folder.mkdir()
            yield folder
            if target.exists() or target.is_symlink():  # rename cannot replace a non-empty folder: move it out first
                aside = _aside_name(target)
                os.rename(target, aside)
    except BaseException:
        if aside is not None and not (target.exists() or target.is_symlink()):
            os.rename(aside, target)  # the new folder did not take its place: the old one goes back, whole
        raise
    if aside is not None:
        _remove(aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
