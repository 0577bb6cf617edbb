"""Write a trained model in the official O1 Embedder adapter layout (+ optionally merged).

    out/adapter_config.json          base_model_name_or_path = the base id or path
    out/adapter_model.safetensors    LoRA weights
    out/embedding/emb.pth            torch.save(nn.Embedding) with the trained O1 token rows
    out/embedding/lm_head.pth        torch.save(nn.Linear), only when the head is not tied
    out/tokenizer*                   tokenizer with the four O1 tokens
With token_rows_only, emb.pth gives way to PEFT's own trainable tokens: `trainable_token_indices` in
adapter_config.json names the O1 token ids, and adapter_model.safetensors holds their rows (LoRA training leaves
every other row at the base model's value). Plain `peft.PeftModel.from_pretrained` then loads it onto a base whose
vocabulary already has the O1 tokens (`o1_retriever.formatting.add_special_tokens` resizes it), and the shipped
default adapter stays at ~20 MB instead of ~80 MB.
`o1_retriever.O1Embedder.from_pretrained(out)` loads either form and uses the official prompt style.
"""
from __future__ import annotations

import json
import stat
from pathlib import Path

import torch

from .modeling import O1TrainingModel

ROWS_FILE = "token_rows.safetensors"  # the compact form before PEFT's trainable tokens; still read by the loaders
# PEFT stores a trainable-tokens layer's rows under this name (absolute values, despite "delta": PEFT index_copies
# them over the base rows), prefixed by the embedding's module path.
TOKEN_ROWS_SUFFIX = "token_adapter.trainable_tokens_delta"


def _plain_linear(head: torch.nn.Module) -> torch.nn.Linear:
    w = head.weight.detach()
    out = torch.nn.Linear(w.shape[1], w.shape[0], bias=getattr(head, "bias", None) is not None, dtype=w.dtype)
    out.weight.data.copy_(w)
    if out.bias is not None:
        out.bias.data.copy_(head.bias.detach())
    return out


UNTIED_ROWS_ONLY = "token rows alone cannot rebuild an untied lm_head.pth; export with emb.pth"


def input_embedding_name(model) -> str:
    """Module path of a causal LM's input embedding ("model.embed_tokens" for Llama)."""
    emb = model.get_input_embeddings()
    return next(name for name, module in model.named_modules() if module is emb)


def write_peft_token_rows(adapter_dir, embedding_name: str, ids: list[int], rows: torch.Tensor) -> None:
    """Store the O1 token rows as PEFT's trainable tokens of `embedding_name`: the indices go into
    adapter_config.json, the rows into adapter_model.safetensors beside the LoRA tensors (left as they are)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    adapter_dir = Path(adapter_dir)
    if rows.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} token ids {ids} but {rows.shape[0]} rows")
    config_path, weights = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    config = json.loads(config_path.read_text())
    config["trainable_token_indices"] = {embedding_name: [int(i) for i in ids]}
    with safe_open(str(weights), "pt") as f:
        metadata = f.metadata()
    tensors, mode = load_file(str(weights)), weights.stat().st_mode
    tensors[f"base_model.model.{embedding_name}.{TOKEN_ROWS_SUFFIX}"] = rows.detach().cpu().contiguous().clone()
    save_file(tensors, str(weights), metadata=metadata)
    weights.chmod(stat.S_IMODE(mode))  # save_file may write owner-only: keep it as readable as PEFT wrote it
    config_path.write_text(json.dumps(config, indent=2))


def read_peft_token_rows(adapter_dir) -> dict[int, torch.Tensor] | None:
    """{token id: row} from an adapter's PEFT trainable tokens, None when its config sets none.
    Only the input embedding's rows are supported (what a tied O1 model trains)."""
    from safetensors import safe_open

    adapter_dir = Path(adapter_dir)
    indices = json.loads((adapter_dir / "adapter_config.json").read_text()).get("trainable_token_indices")
    if not indices:
        return None
    targets = indices if isinstance(indices, dict) else {"the input embedding": indices}
    if len(targets) != 1:
        raise ValueError(f"{adapter_dir}/adapter_config.json: trainable_token_indices trains rows of "
                         f"{sorted(targets)}; only one module (the input embedding) is supported")
    (ids,) = targets.values()
    weights = adapter_dir / "adapter_model.safetensors"
    with safe_open(str(weights), "pt") as f:
        keys = [k for k in f.keys() if k.endswith(TOKEN_ROWS_SUFFIX)]
        if len(keys) != 1:
            raise ValueError(f"{weights} should hold one *.{TOKEN_ROWS_SUFFIX} tensor for trainable_token_indices, "
                             f"found {keys}")
        rows = f.get_tensor(keys[0])
    if rows.shape[0] != len(ids):
        raise ValueError(f"{weights}: {keys[0]} has {rows.shape[0]} rows for {len(ids)} trainable_token_indices")
    return {int(i): row for i, row in zip(ids, rows)}


def _drop_legacy_embedding_files(out: Path) -> None:
    """The compact form keeps nothing under embedding/: remove what an earlier export may have left there."""
    folder = out / "embedding"
    for name in ("emb.pth", "lm_head.pth", ROWS_FILE):
        (folder / name).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def export_adapter(model: O1TrainingModel, out_dir, merge: bool = False, token_rows_only: bool = False) -> Path:
    if token_rows_only and not model.tied:
        raise ValueError(f"token_rows_only: {UNTIED_ROWS_ONLY}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The token rows go to emb.pth (official layout) or to PEFT's trainable tokens, never as a whole matrix
    # into the adapter file.
    model.lm.save_pretrained(out, save_embedding_layers=False)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = model.base_name
    config_path.write_text(json.dumps(config, indent=2))
    embedding = model.trained_input_embedding().cpu()
    if token_rows_only:  # LoRA training changes only these rows: write them, not the whole matrix
        ids = model.token_ids.tolist()
        write_peft_token_rows(out, input_embedding_name(model.base_model), ids, embedding.weight[ids])
        _drop_legacy_embedding_files(out)
    else:
        (out / "embedding").mkdir(exist_ok=True)
        torch.save(embedding, out / "embedding" / "emb.pth")
        (out / "embedding" / ROWS_FILE).unlink(missing_ok=True)
        head_file = out / "embedding" / "lm_head.pth"
        if not model.tied:
            torch.save(_plain_linear(model.base_model.get_output_embeddings()).cpu(), head_file)
        else:
            head_file.unlink(missing_ok=True)
    model.tokenizer.save_pretrained(out)
    if merge:
        merge_adapter(out, out / "merged")
    return out


def write_token_rows(adapter_dir) -> Path:
    """Convert an existing adapter (e.g. an official checkpoint) from `embedding/emb.pth` to the compact form
    (the O1 token rows alone, as PEFT trainable tokens), after checking against the base model that no other row
    was trained. Returns the adapter weights file that now holds the rows."""
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
    write_peft_token_rows(adapter_dir, input_embedding_name(base), ids, trained[ids])
    _drop_legacy_embedding_files(adapter_dir)
    return adapter_dir / "adapter_model.safetensors"


def merge_adapter(adapter_dir, out_dir) -> Path:
    """Fold the LoRA into the base and save a plain HF model dir (the published checkpoint's form)."""
    from o1_retriever.loading import load_causal_lm
    loaded = load_causal_lm(str(adapter_dir), device=torch.device("cpu"), dtype=torch.float32)
    out = Path(out_dir)
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out
