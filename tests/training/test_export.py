"""Export of a tied-head model: no lm_head.pth, and the loaded model uses the trained rows on both
the input and the (tied) output side, exactly as during training."""
import json

import torch

from o1_retriever import O1Embedder
from o1_retriever_training.arguments import ModelArguments
from o1_retriever_training.export import export_adapter
from o1_retriever_training.modeling import build


def test_tied_model_round_trip(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.conftest import build_tokenizer
    tok = build_tokenizer(with_o1_tokens=False)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    base = tmp_path / "tied"
    LlamaForCausalLM(config).save_pretrained(base)
    tok.save_pretrained(base)

    model = build(ModelArguments(base_model=str(base), lora_r=2, lora_alpha=4, gradient_checkpointing=False))
    assert model.tied
    with torch.no_grad():
        model.token_delta += torch.randn_like(model.token_delta)
    hidden = torch.randn(3, 32)
    plain = model.base_model.get_output_embeddings()(hidden)
    trained_logits = model._gen_logits(hidden)
    ids = model.token_ids
    assert torch.allclose(trained_logits[:, ids], plain[:, ids] + hidden @ model.token_delta.T, atol=1e-5)

    out = export_adapter(model, tmp_path / "adapter")
    assert not (out / "embedding" / "lm_head.pth").exists()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base.resolve())
    loaded = O1Embedder.from_pretrained(str(out), device="cpu", dtype="fp32", thought_cache=False)
    lm = loaded.encoder.model
    expected = model.trained_input_embedding().weight
    assert torch.allclose(lm.get_input_embeddings().weight, expected)
    assert torch.allclose(lm.get_output_embeddings().weight[ids], expected[ids])  # the tied head sees them too
