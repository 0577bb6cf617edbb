"""Write a trained model in the official O1 Embedder adapter layout (+ optionally merged).

    out/adapter_config.json          base_model_name_or_path = the base id or path
    out/adapter_model.safetensors    LoRA weights
    out/embedding/emb.pth            torch.save(nn.Embedding) with the trained O1 token rows
    out/embedding/lm_head.pth        torch.save(nn.Linear), only when the head is not tied
    out/tokenizer*                   tokenizer with the four O1 tokens
`o1_retriever.O1Embedder.from_pretrained(out)` loads it and uses the official prompt style.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .modeling import O1TrainingModel


def _plain_linear(head: torch.nn.Module) -> torch.nn.Linear:
    w = head.weight.detach()
    out = torch.nn.Linear(w.shape[1], w.shape[0], bias=getattr(head, "bias", None) is not None, dtype=w.dtype)
    out.weight.data.copy_(w)
    if out.bias is not None:
        out.bias.data.copy_(head.bias.detach())
    return out


def export_adapter(model: O1TrainingModel, out_dir, merge: bool = False) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The token rows go to emb.pth (official layout), not into the adapter file.
    model.lm.save_pretrained(out, save_embedding_layers=False)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = model.base_name
    config_path.write_text(json.dumps(config, indent=2))
    (out / "embedding").mkdir(exist_ok=True)
    torch.save(model.trained_input_embedding().cpu(), out / "embedding" / "emb.pth")
    head_file = out / "embedding" / "lm_head.pth"
    if not model.tied:
        torch.save(_plain_linear(model.base_model.get_output_embeddings()).cpu(), head_file)
    elif head_file.exists():
        head_file.unlink()
    model.tokenizer.save_pretrained(out)
    if merge:
        merge_adapter(out, out / "merged")
    return out


def merge_adapter(adapter_dir, out_dir) -> Path:
    """Fold the LoRA into the base and save a plain HF model dir (the published checkpoint's form)."""
    from o1_retriever.loading import load_causal_lm
    loaded = load_causal_lm(str(adapter_dir), device=torch.device("cpu"), dtype=torch.float32)
    out = Path(out_dir)
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out
