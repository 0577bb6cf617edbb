"""Warm start (`--init-adapter`): continue training from a trained O1 adapter, e.g. the bundled default,
instead of a fresh LoRA. Its LoRA weights and O1 token rows are loaded into a model built with the adapter's own
LoRA shape; the optimiser and schedule start afresh (unlike `--resume`, which continues one interrupted run).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from .arguments import ModelArguments


def resolve_init_adapter(init_adapter: str) -> tuple[Path, dict]:
    """(adapter directory, its adapter_config.json) for `init_adapter`: a directory or 'default'."""
    from o1_retriever.default_model import ADAPTER_DIR
    path = ADAPTER_DIR if init_adapter == "default" else Path(init_adapter).expanduser()
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise ValueError(f"init_adapter={init_adapter!r}: {config_file} does not exist; pass a directory written by "
                         f"`o1-retriever train` (adapter_config.json, adapter_model.safetensors) or 'default'")
    if (path / "embedding" / "lm_head.pth").exists():
        raise ValueError(f"init_adapter={init_adapter!r} has an untied output head (embedding/lm_head.pth); "
                         f"continuing from it is not supported, only tied-embedding models such as SmolLM2")
    return path, json.loads(config_file.read_text())


def effective_model_arguments(model_args: ModelArguments, config: dict | None = None) -> ModelArguments:
    """The arguments a run actually uses: with init_adapter, the LoRA shape is the adapter's (so its weights fit),
    whatever --lora-r/--lora-alpha/--lora-target-modules say; training_args.json records these. `config`: the
    adapter's config when the caller has already read it (resolve_init_adapter)."""
    if not model_args.init_adapter:
        return model_args
    if config is None:
        _, config = resolve_init_adapter(model_args.init_adapter)
    return dataclasses.replace(model_args, lora_r=config["r"], lora_alpha=config["lora_alpha"],
                               lora_target_modules=sorted(config["target_modules"]))


def _load_trained_rows(adapter_dir: Path, tokenizer, ids: list[int]) -> torch.Tensor | None:
    """The adapter's O1 token rows, in `ids` order: PEFT trainable tokens (the compact export), the full emb.pth
    (the official layout) or token_rows.safetensors (the compact form of adapters exported before)."""
    from o1_retriever.loading import _load_module  # the allow-listed reader the loaders use, not a full unpickler

    # here, not at the top: export imports modeling, which imports this module
    from .export import ROWS_FILE, read_peft_token_rows
    peft_rows = read_peft_token_rows(adapter_dir)
    if peft_rows is not None:
        missing = [t for t, i in zip(tokenizer.convert_ids_to_tokens(ids), ids) if i not in peft_rows]
        if missing:
            raise ValueError(f"{adapter_dir}/adapter_config.json: trainable_token_indices {sorted(peft_rows)} "
                             f"lacks the ids of {missing}")
        return torch.stack([peft_rows[i] for i in ids]).float()
    rows_file, emb_file = adapter_dir / "embedding" / ROWS_FILE, adapter_dir / "embedding" / "emb.pth"
    if rows_file.exists():
        from safetensors.torch import load_file
        rows = load_file(str(rows_file))
        tokens = tokenizer.convert_ids_to_tokens(ids)
        missing = [t for t in tokens if t not in rows]
        if missing:
            raise ValueError(f"{rows_file} lacks rows for {missing}")
        return torch.stack([rows[t] for t in tokens]).float()
    if emb_file.exists():
        return _load_module(emb_file, torch.nn.Embedding).weight[ids].detach().float()
    return None  # an adapter trained without token rows: they stay the base model's


def warm_start(model, adapter_dir: Path) -> None:
    """Load a trained adapter's LoRA weights and token rows into a freshly built model of the same shape.
    The rows are stored absolute; the model keeps them as a delta over its (mean-initialised) base rows."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from .export import TOKEN_ROWS_SUFFIX
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise ValueError(f"init_adapter: {weights} does not exist")
    # PEFT's trainable-token rows go to the model's own token delta (below), not into its LoRA.
    lora = {k: v for k, v in load_file(str(weights)).items() if not k.endswith(TOKEN_ROWS_SUFFIX)}
    result = set_peft_model_state_dict(model.lm, lora)
    lora_missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or lora_missing:
        raise ValueError(f"init_adapter: {weights} does not fit the model built from its adapter_config.json "
                         f"(unexpected: {result.unexpected_keys[:3]}, missing: {lora_missing[:3]})")
    rows = _load_trained_rows(adapter_dir, model.tokenizer, model.token_ids.tolist())
    if rows is not None:
        base = model.base_model.get_input_embeddings().weight[model.token_ids].detach().float()
        with torch.no_grad():
            model.token_delta.copy_(rows - base)
