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

ROWS_FILE = "token_rows.safetensors"  # read by o1_retriever.loading


def _plain_linear(head: torch.nn.Module) -> torch.nn.Linear:
    w = head.weight.detach()
    out = torch.nn.Linear(w.shape[1], w.shape[0], bias=getattr(head, "bias", None) is not None, dtype=w.dtype)
    out.weight.data.copy_(w)
    if out.bias is not None:
        out.bias.data.copy_(head.bias.detach())
    return out


UNTIED_ROWS_ONLY = "token rows alone cannot rebuild an untied lm_head.pth; export with emb.pth"


def export_adapter(model: O1TrainingModel, out_dir, merge: bool = False, token_rows_only: bool = False) -> Path:
    if token_rows_only and not model.tied:
        raise ValueError(f"token_rows_only: {UNTIED_ROWS_ONLY}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The token rows go to emb.pth (official layout), not into the adapter file.
    model.lm.save_pretrained(out, save_embedding_layers=False)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = model.base_name
    config_path.write_text(json.dumps(config, indent=2))
    (out / "embedding").mkdir(exist_ok=True)
    emb_file, rows_file = out / "embedding" / "emb.pth", out / "embedding" / ROWS_FILE
    embedding = model.trained_input_embedding().cpu()
    if token_rows_only:  # LoRA training changes only these rows: write them, not the whole matrix
        from safetensors.torch import save_file
        tokens = model.tokenizer.convert_ids_to_tokens(model.token_ids.tolist())
        save_file({t: embedding.weight[i].clone() for t, i in zip(tokens, model.token_ids.tolist())}, str(rows_file))
        emb_file.unlink(missing_ok=True)
    else:
        torch.save(embedding, emb_file)
        rows_file.unlink(missing_ok=True)
    head_file = out / "embedding" / "lm_head.pth"
    if not model.tied:
        torch.save(_plain_linear(model.base_model.get_output_embeddings()).cpu(), head_file)
    elif head_file.exists():
        head_file.unlink()
    model.tokenizer.save_pretrained(out)
    if merge:
        merge_adapter(out, out / "merged")
    return out


def write_token_rows(adapter_dir) -> Path:
    """Convert an existing adapter (e.g. an official checkpoint) from `embedding/emb.pth` to the O1 token
    rows alone, after checking against the base model that no other row was trained."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from o1_retriever.default_model import resolve_base_model
    from o1_retriever.formatting import SPECIAL_TOKENS
    from o1_retriever.loading import _load_module

    adapter_dir = Path(adapter_dir)
    emb_file = adapter_dir / "embedding" / "emb.pth"
    if (adapter_dir / "embedding" / "lm_head.pth").exists():
        raise ValueError(f"{adapter_dir} has an untied lm_head.pth: {UNTIED_ROWS_ONLY}")
    trained = _load_module(emb_file, torch.nn.Embedding).weight.detach()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    base_name = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = AutoModelForCausalLM.from_pretrained(resolve_base_model(base_name), dtype=trained.dtype)
    base_rows = base.get_input_embeddings().weight.detach()
    n = base_rows.shape[0]  # the base may lack the O1 rows altogether
    others = torch.ones(n, dtype=torch.bool)
    others[[i for i in ids if i < n]] = False
    if not torch.equal(trained[:n][others], base_rows[others]):
        raise ValueError(f"{emb_file} changes rows other than the O1 tokens {SPECIAL_TOKENS}: keep emb.pth")
    out = adapter_dir / "embedding" / ROWS_FILE
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
