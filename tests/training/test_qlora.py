"""QLoRA: the base in NF4 (bitsandbytes, which runs on this CPU), LoRA + token rows trained, and the
export loads in full precision."""
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever_training.arguments import ModelArguments
from o1_retriever_training.data import TrainRecord
from o1_retriever_training.dataset import TrainCollator, TrainDataset
from o1_retriever_training.export import export_adapter
from o1_retriever_training.modeling import build


def test_qlora_step_and_export(tiny_lm_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    model = build(ModelArguments(base_model=str(tiny_lm_dir), lora_r=4, lora_alpha=8, quantization="4bit"))
    assert any("4bit" in type(m).__name__ for m in model.modules())
    records = [TrainRecord("insulin glucose", ["diabetes insulin"], ["coral reef"], "insulin is a hormone", 1),
               TrainRecord("coral reef", ["ocean reef coral"], ["insulin"], "reefs are in the ocean", 2)]
    ds = TrainDataset(records, group_size=2, empty_thought_ratio=0.0)
    batch = TrainCollator(model.tokenizer)([ds[0], ds[1]])
    model.train()
    out = model(**batch)
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.token_delta.grad.abs().sum() > 0
    adapter = export_adapter(model, tmp_path / "adapter")
    loaded = O1Embedder.from_pretrained(str(adapter), device="cpu", dtype="fp32", thought_cache=False)
    assert loaded.encode_documents("insulin").shape == (64,)


def test_unsupported_training_quantization_is_rejected(tiny_lm_dir):
    with pytest.raises(ValueError, match="quantization='8bit' is not supported for training"):
        build(ModelArguments(base_model=str(tiny_lm_dir), quantization="8bit"))
