"""A tiny LoRA checkpoint in the official O1 Embedder layout, for the loading and parity tests."""
from __future__ import annotations

import json

import torch


def write_official_adapter(tiny_o1_dir, out, save_lm_head: bool, seed: int = 3):
    """Adapter files + embedding/emb.pth (+ lm_head.pth) in `out`; returns (the merged reference model, tokenizer)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_o1_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_o1_dir)
    torch.manual_seed(seed)
    with torch.no_grad():  # "trained" O1 token rows that differ from the base checkpoint's
        base.get_input_embeddings().weight[-4:] += torch.randn(4, base.config.hidden_size)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    peft.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tiny_o1_dir)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    (out / "embedding").mkdir()
    torch.save(base.get_input_embeddings(), out / "embedding" / "emb.pth")
    if save_lm_head:
        torch.save(base.get_output_embeddings(), out / "embedding" / "lm_head.pth")
    tok.save_pretrained(out)
    return peft.merge_and_unload().eval(), tok
