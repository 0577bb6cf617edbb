"""Write a trained model in the official O1 Embedder adapter layout (+ optionally merged).

    out/adapter_config.json          base_model_name_or_path = the base id or path
    out/adapter_model.safetensors    LoRA weights
    out/embedding/emb.pth            torch.save(nn.Embedding) with the trained O1 token rows
    out/embedding/lm_head.pth        torch.save(nn.Linear), only when the head is not tied
    out/tokenizer*                   tokenizer with the four O1 tokens
With token_rows_only, emb.pth gives way to `embedding/token_rows.safetensors`: just the rows of the
O1 tokens (LoRA training leaves every other row at the base model's value), which o1-retriever loads
onto the base embedding. That keeps the shipped default adapter at ~23 MB instead of ~80 MB.
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


def export_adapter(model: O1TrainingModel, out_dir, merge: bool = False, token_rows_only: bool = False) -> Path:
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
    if token_rows_only:
        write_token_rows(out)
    if merge:
        merge_adapter(out, out / "merged")
    return out


def write_token_rows(adapter_dir) -> Path:
    """Replace `embedding/emb.pth` by the O1 token rows alone, after checking nothing else was trained."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from o1_retriever.default_model import resolve_base_model
    from o1_retriever.formatting import SPECIAL_TOKENS
    from o1_retriever.loading import _load_module

    adapter_dir = Path(adapter_dir)
    emb_file = adapter_dir / "embedding" / "emb.pth"
    if (adapter_dir / "embedding" / "lm_head.pth").exists():
        raise ValueError(f"{adapter_dir} has an untied lm_head.pth: token rows alone cannot rebuild it; keep emb.pth")
    trained = _load_module(emb_file, torch.nn.Embedding).weight.detach()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    base_name = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = AutoModelForCausalLM.from_pretrained(resolve_base_model(base_name), dtype=trained.dtype)
    base_rows = base.get_input_embeddings().weight.detach()
    others = [i for i in range(base_rows.shape[0]) if i not in ids]
    if not torch.equal(trained[others], base_rows[others]):
        raise ValueError(f"{emb_file} changes rows other than the O1 tokens {SPECIAL_TOKENS}: keep emb.pth")
    out = adapter_dir / "embedding" / "token_rows.safetensors"
    save_file({tok: trained[i].clone().contiguous() for tok, i in zip(SPECIAL_TOKENS, ids)}, str(out))
    emb_file.unlink()
    return out


def merge_adapter(adapter_dir, out_dir) -> Path:
    """Fold the LoRA into the base and save a plain HF model dir (the published checkpoint's form)."""
    from o1_retriever.loading import load_causal_lm
    loaded = load_causal_lm(str(adapter_dir), device=torch.device("cpu"), dtype=torch.float32)
    out = Path(out_dir)
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out
