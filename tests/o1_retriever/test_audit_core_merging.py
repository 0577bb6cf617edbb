"""The merged-adapter cache under a real kill: a process killed mid-merge leaves nothing that outlives the next
merge (the temporary is model-sized, and hidden)."""
import os
import signal
import subprocess
import sys

import torch

from o1_retriever.merging import merged_adapter_dir
from tests.o1_retriever.official_layout import write_official_adapter
from tests.o1_retriever.test_audit_core2_gguf_cache import KILL_AT_TOKENIZER_SAVE


def test_a_merge_killed_mid_write_leaves_no_temporary_after_the_next_merge(tiny_o1_dir, tmp_path, monkeypatch):
    adapter = tmp_path / "adapter"
    write_official_adapter(tiny_o1_dir, adapter, False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(cache))
    code = (KILL_AT_TOKENIZER_SAVE + "import torch; from o1_retriever.merging import merged_adapter_dir; "
            f"merged_adapter_dir({str(adapter)!r}, torch.float32)")
    child = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert [any(t.iterdir()) for t in (cache / "models").glob(".merged-*.tmp")] == [True]  # the merged weights

    merged = merged_adapter_dir(adapter, torch.float32)
    assert (merged / "config.json").exists()
    assert not list((cache / "models").glob(".merged-*.tmp"))  # was: one leaked per kill, never pruned
