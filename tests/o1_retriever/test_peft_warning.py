"""Loading a LoRA adapter printed transformers' FutureWarning about `is_gradient_checkpointing` (PEFT reads the
deprecated attribute): noise a user can do nothing about, on the bundled default's first run."""
import warnings

import torch

from o1_retriever.checkpoint import load_adapter
from tests.o1_retriever.official_layout import write_official_adapter


def test_loading_an_adapter_shows_no_deprecation_from_peft(tiny_o1_dir, tmp_path):
    adapter = tmp_path / "adapter"
    write_official_adapter(tiny_o1_dir, adapter, False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _ = load_adapter(adapter, torch.float32)
    assert model is not None
    assert [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)] == []
    # the filter is local: the same warning raised by the user's own code afterwards still shows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.is_gradient_checkpointing
    assert [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_loading_an_adapter_offline_prints_nothing_about_a_bitsandbytes_kernel(tiny_o1_dir, tmp_path):
    """With bitsandbytes installed (the [qlora] extra), peft's LoRA layers import it, and its CPU backend's hub lookup
    logged "Failed to load CPU gemm_4bit_forward ... pip install kernels" on every fresh process's adapter load, with
    nothing quantized. A fresh process: the warning is logged at bitsandbytes' first import only."""
    import importlib.util
    import os
    import subprocess
    import sys

    import pytest
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed: nothing imports it")
    adapter = tmp_path / "adapter"
    write_official_adapter(tiny_o1_dir, adapter, False)
    code = ("import torch; from o1_retriever.checkpoint import load_adapter; "
            f"load_adapter({str(adapter)!r}, torch.float32); print('loaded')")
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]
    assert "gemm_4bit_forward" not in done.stderr and "publisher trust check" not in done.stderr, done.stderr[-2000:]
