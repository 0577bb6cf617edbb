"""A device this machine lacks is refused by name, with what it has, before any weights load (torch built without
CUDA otherwise asserts deep inside model.to, and quantizing fails as an opaque child exit)."""
from __future__ import annotations

import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.device import available_devices, resolve_device


def _missing_cuda() -> list[str]:
    """CUDA devices this machine does not have: all of them without CUDA, else the index past the last GPU."""
    if not torch.cuda.is_available():
        return ["cuda", "cuda:0", "cuda:3"]
    return [f"cuda:{torch.cuda.device_count()}"]


@pytest.mark.parametrize("device", _missing_cuda())
def test_a_cuda_device_this_machine_lacks_is_refused_by_name(device):
    with pytest.raises(ValueError, match=rf"device='{device}'.*available: cpu"):
        resolve_device(device)


def test_mps_where_it_is_not_available_is_refused():
    if torch.backends.mps.is_available():
        assert resolve_device("mps").type == "mps"
        return
    with pytest.raises(ValueError, match=r"device='mps'.*MPS.*not available.*available: cpu"):
        resolve_device("mps")


def test_the_devices_there_are_still_resolve():
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(None).type in ("cpu", "cuda")
    for name in available_devices():
        assert resolve_device(name) == torch.device(name)
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu")


@pytest.mark.parametrize("quantization", [None, "4bit"])
def test_loading_on_a_missing_device_fails_at_once_with_the_reason(tiny_o1_dir, tiny_lm_dir, quantization):
    device = _missing_cuda()[0]
    with pytest.raises(ValueError, match=rf"device='{device}'.*available: cpu"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), device=device, quantization=quantization, thought_cache=False)
    with pytest.raises(ValueError, match=rf"device='{device}'.*available: cpu"):
        O1Embedder.composite(thinker=str(tiny_lm_dir), device=device, quantization=quantization, thought_cache=False)


@pytest.mark.parametrize("device", ["meta", "xpu"])
def test_a_device_no_model_runs_on_is_refused_by_every_resolver_caller(device):
    """eval, bench, the server and training resolve the device themselves: "meta" passed there and failed deep
    inside loading (or, for "meta", loaded weights with no data)."""
    with pytest.raises(ValueError, match=f"device='{device}': models run on 'cpu', 'cuda'"):
        resolve_device(device)


def test_an_integer_dtype_is_refused_by_the_dtype_resolver_with_the_option_named():
    from o1_retriever.device import resolve_dtype
    with pytest.raises(ValueError, match=r"encoder_dtype=torch\.int8 is not a weights dtype"):
        resolve_dtype(torch.int8, torch.device("cpu"), "encoder_dtype")
    assert resolve_dtype(torch.float16, torch.device("cpu")) is torch.float16


def test_the_eval_cli_refuses_a_meta_device_before_reading_data(tmp_path, capsys):
    from o1_retriever.cli import main
    code = main(["eval", "--model", "o1-retriever-default", "--dataset", str(tmp_path / "missing"),
                 "--device", "meta"])
    assert code != 0 and "device='meta': models run on" in capsys.readouterr().err
