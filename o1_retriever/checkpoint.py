"""The files of an O1 checkpoint, defined once: `loading` reads them, the training package writes them.

An O1 checkpoint is a PEFT LoRA adapter directory over a causal LM, plus the trained rows of the four O1 tokens:

    adapter_config.json                base_model_name_or_path (the base id or path); in the PEFT form,
                                       trainable_token_indices naming the O1 token ids
    adapter_model.safetensors          LoRA weights; in the PEFT form also the O1 token rows (PEFT trainable tokens)
    embedding/emb.pth                  official layout: torch.save(nn.Embedding), the whole input embedding
    embedding/lm_head.pth              official layout, only when the head is not tied: torch.save(nn.Linear)
    embedding/token_rows.safetensors   an older compact form, {token: row}: read, no longer written
    tokenizer*                         the tokenizer with the four O1 tokens
    o1_generation.json                 the inference settings the model ships with (`settings.read_model_settings`)

The PEFT form loads with plain `peft.PeftModel.from_pretrained` onto a base whose vocabulary has the O1 tokens
(`formatting.add_special_tokens` resizes it); the official layout is the published O1 Embedder checkpoints'.
`adapter_loading.load_adapter` loads any of these forms (also importable from here).
"""
from __future__ import annotations

import json
import stat
from pathlib import Path

import torch

from .settings import SETTINGS_FILE
from .validation import read_json_object

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
EMBEDDING_DIR = "embedding"
EMB_FILE, LM_HEAD_FILE, ROWS_FILE = "emb.pth", "lm_head.pth", "token_rows.safetensors"
# PEFT stores a trainable-tokens layer's rows under this name (absolute values, despite "delta": PEFT index_copies
# them over the base rows), prefixed by the embedding's module path.
TOKEN_ROWS_SUFFIX = "token_adapter.trainable_tokens_delta"
__all__ = ["ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "EMBEDDING_DIR", "EMB_FILE", "LM_HEAD_FILE", "ROWS_FILE",
           "SETTINGS_FILE", "TOKEN_ROWS_SUFFIX", "is_adapter", "embedding_file", "read_adapter_config", "load_module",
           "read_peft_token_rows", "write_peft_token_rows", "trained_rows", "drop_embedding_files"]


def is_adapter(path) -> bool:
    return (Path(path).expanduser() / ADAPTER_CONFIG).exists()


def embedding_file(adapter_dir, name: str) -> Path:
    """`adapter_dir/embedding/<name>` (EMB_FILE, LM_HEAD_FILE or ROWS_FILE)."""
    return Path(adapter_dir) / EMBEDDING_DIR / name


def read_adapter_config(adapter_dir) -> dict:
    path = Path(adapter_dir) / ADAPTER_CONFIG
    config = read_json_object(path, "the LoRA adapter's settings (a JSON object)")
    if config is None:
        raise FileNotFoundError(f"{path} does not exist: {adapter_dir} is not a LoRA adapter directory")
    return config


def load_module(path: Path, cls):
    """The official files are whole pickled modules; allow-list just that class, never a full unpickler."""
    with torch.serialization.safe_globals([cls]):
        try:
            module = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError) as e:  # torch's own message names no file
            raise ValueError(f"{path} is not a readable torch.save file (truncated or corrupt?): {e}") from e
    if not isinstance(module, cls):
        raise ValueError(f"{path} holds a {type(module).__name__}, expected a torch.nn.{cls.__name__}")
    return module


def write_peft_token_rows(adapter_dir, embedding_name: str, ids: list[int], rows: torch.Tensor) -> None:
    """Store the O1 token rows as PEFT's trainable tokens of `embedding_name`: the indices go into
    adapter_config.json, the rows into adapter_model.safetensors beside the LoRA tensors (left as they are)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    adapter_dir = Path(adapter_dir)
    if rows.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} token ids {ids} but {rows.shape[0]} rows")
    config, weights = read_adapter_config(adapter_dir), adapter_dir / ADAPTER_WEIGHTS
    config["trainable_token_indices"] = {embedding_name: [int(i) for i in ids]}
    with safe_open(str(weights), "pt") as f:
        metadata = f.metadata()
    tensors, mode = load_file(str(weights)), weights.stat().st_mode
    tensors[f"base_model.model.{embedding_name}.{TOKEN_ROWS_SUFFIX}"] = rows.detach().cpu().contiguous().clone()
    save_file(tensors, str(weights), metadata=metadata)
    weights.chmod(stat.S_IMODE(mode))  # save_file may write owner-only: keep it as readable as PEFT wrote it
    (adapter_dir / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))


def read_peft_token_rows(adapter_dir) -> dict[int, torch.Tensor] | None:
    """{token id: row} from an adapter's PEFT trainable tokens, None when its config sets none.
    Only the input embedding's rows are supported (what a tied O1 model trains)."""
    from safetensors import safe_open

    adapter_dir = Path(adapter_dir)
    indices = read_adapter_config(adapter_dir).get("trainable_token_indices")
    if not indices:
        return None
    targets = indices if isinstance(indices, dict) else {"the input embedding": indices}
    if len(targets) != 1:
        raise ValueError(f"{adapter_dir / ADAPTER_CONFIG}: trainable_token_indices trains rows of "
                         f"{sorted(targets)}; only one module (the input embedding) is supported")
    (ids,) = targets.values()
    weights = adapter_dir / ADAPTER_WEIGHTS
    with safe_open(str(weights), "pt") as f:
        keys = [k for k in f.keys() if k.endswith(TOKEN_ROWS_SUFFIX)]
        if len(keys) != 1:
            raise ValueError(f"{weights} should hold one *.{TOKEN_ROWS_SUFFIX} tensor for trainable_token_indices, "
                             f"found {keys}")
        rows = f.get_tensor(keys[0])
    if rows.shape[0] != len(ids):
        raise ValueError(f"{weights}: {keys[0]} has {rows.shape[0]} rows for {len(ids)} trainable_token_indices")
    return {int(i): row for i, row in zip(ids, rows)}


def _rows_by_token(rows_file: Path, tokens: list[str]) -> list[torch.Tensor]:
    from safetensors.torch import load_file
    rows = load_file(str(rows_file))
    missing = [t for t in tokens if t not in rows]
    if missing:
        raise ValueError(f"{rows_file} lacks rows for {missing}")
    return [rows[t] for t in tokens]


def trained_rows(adapter_dir, tokenizer, ids: list[int]) -> torch.Tensor | None:
    """The adapter's trained rows for token `ids`, in that order, from whichever form it has: PEFT trainable
    tokens, the full emb.pth or token_rows.safetensors; None for an adapter trained without token rows."""
    adapter_dir = Path(adapter_dir)
    peft_rows = read_peft_token_rows(adapter_dir)
    if peft_rows is not None:
        missing = [t for t, i in zip(tokenizer.convert_ids_to_tokens(ids), ids) if i not in peft_rows]
        if missing:
            raise ValueError(f"{adapter_dir / ADAPTER_CONFIG}: trainable_token_indices {sorted(peft_rows)} "
                             f"lacks the ids of {missing}")
        return torch.stack([peft_rows[i] for i in ids]).float()
    rows_file, emb_file = embedding_file(adapter_dir, ROWS_FILE), embedding_file(adapter_dir, EMB_FILE)
    if rows_file.exists():
        return torch.stack(_rows_by_token(rows_file, tokenizer.convert_ids_to_tokens(ids))).float()
    if emb_file.exists():
        return load_module(emb_file, torch.nn.Embedding).weight[ids].detach().float()
    return None


def drop_embedding_files(adapter_dir) -> None:
    """Remove the embedding/ files (the PEFT form keeps nothing there), and the folder once empty."""
    folder = Path(adapter_dir) / EMBEDDING_DIR
    for name in (EMB_FILE, LM_HEAD_FILE, ROWS_FILE):
        (folder / name).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def __getattr__(name: str):
    """`checkpoint.load_adapter`, where callers import it from: it lives in adapter_loading.py, which imports this."""
    if name == "load_adapter":
        from .adapter_loading import load_adapter
        return load_adapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
