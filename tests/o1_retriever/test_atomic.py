import subprocess
import sys

import pytest
import torch

from o1_retriever.atomic import atomic_path, sole_writer, write_text_atomically
from o1_retriever.device import dtype_name, resolve_dtype


def test_a_failed_write_leaves_neither_the_target_nor_a_temporary(tmp_path):
    target = tmp_path / "out" / "a.json"
    with pytest.raises(RuntimeError, match="mid-write"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("mid-write")
    assert not target.exists() and list((tmp_path / "out").iterdir()) == []
    write_text_atomically(target, "whole")
    write_text_atomically(target, "newer")  # a file is replaced
    assert target.read_text() == "newer" and [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_a_directory_another_process_completed_first_is_kept(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target) as first, atomic_path(target) as second:
        for folder, who in ((first, "first"), (second, "second")):
            folder.mkdir()
            (folder / "config.json").write_text(who)
    assert (target / "config.json").read_text() == "second"  # the block finishing first wins; no error, no leftover
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_one_map_of_dtype_names():
    for name in ("bf16", "fp16", "fp32", "bfloat16", "float16", "float32"):
        assert dtype_name(resolve_dtype(name, torch.device("cpu"))) == name.replace("bfloat", "bf").replace("float", "fp")
    assert dtype_name(torch.int8, default="auto") == "auto"
    with pytest.raises(ValueError, match="torch.int8 has no short name"):
        dtype_name(torch.int8)
    with pytest.raises(ValueError, match=r"dtype='half' is not supported; use one of \['auto', 'bf16'"):
        resolve_dtype("half", torch.device("cpu"))


def test_sole_writer_removes_only_its_own_leftovers_not_a_dotted_siblings_live_temporary(tmp_path):
    models = tmp_path / "models"
    out = models / "SmolLM2-135M-Instruct"
    sibling = models / "SmolLM2-135M-Instruct.Q4_1"  # a dotted GGUF name: another cache folder, another lock
    with atomic_path(sibling) as live:  # its writer is alive, mid-write
        live.mkdir()
        (live / "config.json").write_text("{}")
        with atomic_path(out) as dead:  # stands for the temporary a killed writer of `out` left
            dead.mkdir()
            with sole_writer(out, done=lambda: (out / "config.json").exists()) as todo:
                assert todo
                assert not dead.exists()  # a dead writer's leftover is cleared
                assert live.is_dir()  # was: deleted too, and the live writer's rename then failed
            dead.mkdir()
            (dead / "config.json").write_text("{}")
    assert (sibling / "config.json").exists() and (out / "config.json").exists()
    assert sorted(p.name for p in models.iterdir()) == [out.name, sibling.name]


def test_sole_writer_says_it_waits_while_another_process_holds_the_lock(tmp_path, capfd):
    out = tmp_path / "models" / "m"
    lock = tmp_path / "locks" / "m.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock\n"
                               f"with FileLock({str(lock)!r}):\n print('held', flush=True); time.sleep(1)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with sole_writer(out, done=lambda: False) as todo:
        assert todo
    assert holder.wait() == 0
    assert capfd.readouterr().err == f"waiting for another process writing {out}\n"
    with sole_writer(out, done=lambda: False):
        pass
    assert capfd.readouterr().err == ""  # a lock free at once: no message
