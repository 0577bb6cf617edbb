"""`replaced_folder`: the old output folder or the new one, whole, whatever fails."""
from __future__ import annotations

import errno
import os

import pytest

import o1_retriever.atomic as atomic
from o1_retriever_training.atomic_outputs import replaced_folder


def _folder_with(path, text):
    path.mkdir()
    (path / "weights").write_text(text)


def test_the_new_folder_replaces_the_old_one_and_nothing_is_left_beside_it(tmp_path):
    out = tmp_path / "model"
    _folder_with(out, "old")
    with replaced_folder(out) as new:
        (new / "weights").write_text("new")
    assert (out / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_error_while_writing_keeps_the_old_folder(tmp_path):
    out = tmp_path / "model"
    _folder_with(out, "old")
    with pytest.raises(RuntimeError):
        with replaced_folder(out) as new:
            (new / "weights").write_text("half")
            raise RuntimeError("killed mid-write")
    assert (out / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failed_final_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    # A rename into place failing after the old folder was moved aside cannot be produced on one local filesystem
    # here (it needs e.g. a network filesystem error), so that one call is made to fail; everything else is real.
    out = tmp_path / "model"
    _folder_with(out, "old")

    def failing_replace(src, dst):
        raise OSError(errno.EIO, "input/output error", str(dst))

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="input/output error"):
        with replaced_folder(out) as new:
            (new / "weights").write_text("new")
    monkeypatch.setattr(atomic.os, "replace", os.replace)
    assert (out / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
