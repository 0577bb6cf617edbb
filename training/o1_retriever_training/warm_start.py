"""Warm start (`--init-adapter`): continue training from a trained O1 adapter, e.g. the bundled default,
instead of a fresh LoRA. Its LoRA weights and O1 token rows are loaded into a model built with the adapter's own
LoRA shape; the optimiser and schedule start afresh (unlike `--resume`, which continues one interrupted run).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from o1_retriever.checkpoint import (ADAPTER_CONFIG, ADAPTER_WEIGHTS, LM_HEAD_FILE, TOKEN_ROWS_SUFFIX, embedding_file,
                                     read_adapter_config, trained_rows)

from .arguments import ModelArguments


def resolve_init_adapter(init_adapter: str) -> tuple[Path, dict]:
    """(adapter directory, its adapter_config.json) for `init_adapter`: a directory or 'default'."""
    from o1_retriever.default_model import ADAPTER_DIR
    path = ADAPTER_DIR if init_adapter == "default" else Path(init_adapter).expanduser()
    config_file = path / ADAPTER_CONFIG
    if not config_file.is_file():
        raise ValueError(f"init_adapter={init_adapter!r}: {config_file} does not exist; pass a directory written by "
                         f"`o1-retriever train` (adapter_config.json, adapter_model.safetensors) or 'default'")
    if embedding_file(path, LM_HEAD_FILE).exists():
        raise ValueError(f"init_adapter={init_adapter!r} has an untied output head (embedding/lm_head.pth); "
                         f"continuing from it is not supported, only tied-embedding models such as SmolLM2")
    return path, read_adapter_config(path)


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


def warm_start(model, adapter_dir: Path) -> None:
    """Load a trained adapter's LoRA weights and token rows into a freshly built model of the same shape.
    The rows are stored absolute; the model keeps them as a delta over its (mean-initialised) base rows."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = adapter_dir / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise ValueError(f"init_adapter: {weights} does not exist")
    # PEFT's trainable-token rows go to the model's own token delta (below), not into its LoRA.
    lora = {k: v for k, v in load_file(str(weights)).items() if not k.endswith(TOKEN_ROWS_SUFFIX)}
    result = set_peft_model_state_dict(model.lm, lora)
    lora_missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or lora_missing:
        raise ValueError(f"init_adapter: {weights} does not fit the model built from its adapter_config.json "
                         f"(unexpected: {result.unexpected_keys[:3]}, missing: {lora_missing[:3]})")
    rows = trained_rows(adapter_dir, model.tokenizer, model.token_ids.tolist())
    if rows is not None:
        base = model.base_model.get_input_embeddings().weight[model.token_ids].detach().float()
        with torch.no_grad():
            model.token_delta.copy_(rows - base)
