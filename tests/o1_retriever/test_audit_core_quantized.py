"""The quantize cache under faults, with real child processes: one killed mid-write, a copy missing its marker,
two processes asking for the same copy at once."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("bitsandbytes")

from o1_retriever.quantized import MARKER, _source_key, quantized_copy  # noqa: E402
from tests.o1_retriever.test_audit_core2_gguf_cache import KILL_AT_TOKENIZER_SAVE  # noqa: E402

CPU = torch.device("cpu")


def _out(cache: Path, source: Path) -> Path:
    return cache / "models" / f"4bit-{_source_key(str(source))}-bf16-cpu"


def _child_killed_mid_write(source, out, env):
    """The quantizing child (`python -m o1_retriever.quantized`), killed by itself once its weights are written."""
    code = (KILL_AT_TOKENIZER_SAVE + "import sys, runpy; "
            f"sys.argv = ['quantized', {str(source)!r}, '4bit', 'bfloat16', 'cpu', {str(out)!r}]; "
            "runpy.run_module('o1_retriever.quantized', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_a_killed_child_and_a_copy_without_marker_are_replaced_not_kept(tiny_o1_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    out = _out(tmp_path, tiny_o1_dir)
    child = _child_killed_mid_write(tiny_o1_dir, out, dict(os.environ))
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    # what the kill left: a hidden, model-sized temporary
    assert [any(t.iterdir()) for t in out.parent.glob(f".{out.name}.*.tmp")] == [True]

    packed, had_tokens = quantized_copy(str(tiny_o1_dir), "4bit", torch.bfloat16, CPU)
    assert packed == out and had_tokens and (out / MARKER).exists()
    assert not list(out.parent.glob(f".{out.name}.*.tmp"))  # was: one leaked per killed child, forever

    (out / MARKER).unlink()  # a copy without its marker (half copied, or cleaned by hand): was a RuntimeError
    (out / "model.safetensors").write_bytes(b"half")  # (exit 0) on every later load, until removed by hand
    packed, _ = quantized_copy(str(tiny_o1_dir), "4bit", torch.bfloat16, CPU)
    assert json.loads((packed / MARKER).read_text())["had_o1_tokens"] is True
    assert (packed / "model.safetensors").stat().st_size > 100


@pytest.mark.slow
def test_two_processes_quantizing_at_once_both_get_the_one_copy(tiny_o1_dir, tmp_path):
    env = dict(os.environ, O1_RETRIEVER_CACHE=str(tmp_path))
    code = ("import torch, sys; from o1_retriever.quantized import quantized_copy; "
            f"print(quantized_copy({str(tiny_o1_dir)!r}, '4bit', torch.bfloat16, torch.device('cpu'))[0])")
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-800:] for _, err in results]
    assert {out.strip() for out, _ in results} == {str(_out(tmp_path, tiny_o1_dir))}
    assert not list((tmp_path / "models").glob(".*.tmp"))
