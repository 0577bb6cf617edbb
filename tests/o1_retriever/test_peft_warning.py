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
