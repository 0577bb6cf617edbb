"""The merged-adapter cache under a real kill: a process killed mid-merge leaves nothing that outlives the next
merge (the temporary is model-sized, and hidden)."""
import os
import signal
import subprocess
import sys
import time

import torch

from o1_retriever.merging import merged_adapter_dir
from tests.o1_retriever.official_layout import write_official_adapter


def test_a_merge_killed_mid_write_leaves_no_temporary_after_the_next_merge(tiny_o1_dir, tmp_path, monkeypatch):
    adapter = tmp_path / "adapter"
    write_official_adapter(tiny_o1_dir, adapter, False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(cache))
    code = f"import torch; from o1_retriever.merging import merged_adapter_dir; merged_adapter_dir({str(adapter)!r}, torch.float32)"
    child = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:  # kill it once it is writing its temporary
        if any(any(t.iterdir()) for t in (cache / "models").glob(".merged-*.tmp")):
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    assert child.wait() == -signal.SIGKILL, "the merge finished before it could be killed"
    assert list((cache / "models").glob(".merged-*.tmp"))

    merged = merged_adapter_dir(adapter, torch.float32)
    assert (merged / "config.json").exists()
    assert not list((cache / "models").glob(".merged-*.tmp"))  # was: one leaked per kill, never pruned
