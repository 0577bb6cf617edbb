"""Load an O1 checkpoint (a LoRA adapter directory in any form `checkpoint` describes) as one merged causal LM: the
official layout's whole embedding files are fitted to the base (rows it gained later, an untied head), the compact
form's rows are set, and PEFT merges the LoRA (and its trainable token rows) in."""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import (ADAPTER_CONFIG, ADAPTER_WEIGHTS, EMB_FILE, LM_HEAD_FILE, ROWS_FILE, embedding_file,
                         load_module, read_adapter_config)
from .default_model import resolve_base_model
from .formatting import SPECIAL_TOKENS, add_special_tokens


def _fit_output_rows(model, rows: int) -> None:
    """After new input rows arrive, give the LM head the same rows (tied models just re-tie)."""
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    head = model.get_output_embeddings()
    if head is not None and head.weight.shape[0] != rows:
        old = head.weight.data
        new = torch.nn.Linear(old.shape[1], rows, bias=False, dtype=old.dtype)
        new.weight.data[: old.shape[0]] = old[:rows]
        if rows > old.shape[0]:
            new.weight.data[old.shape[0]:] = old.mean(0, keepdim=True)
        model.set_output_embeddings(new)
    model.config.vocab_size = rows


def _set_token_rows(model, tokenizer, rows_file: Path, dtype) -> None:
    from safetensors.torch import load_file
    rows = load_file(str(rows_file))
    unknown = sorted(set(rows) - set(tokenizer.get_vocab()))
    if unknown:
        raise ValueError(f"{rows_file} has rows for {unknown}, which the adapter's tokenizer lacks")
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        for token, row in rows.items():
            weight[tokenizer.convert_tokens_to_ids(token)] = row.to(dtype)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()


def _check_rows(path: Path, weight: torch.Tensor, hidden: int, tokenizer) -> None:
    """An official embedding file must fit the base (its width) and hold the trained O1 rows: fewer rows would leave
    them out, and the mean of the others would stand in for them silently. A token the tokenizer gained after the
    file was saved (a pad token, say) may lie past its rows: it keeps the base model's row (`_add_base_rows`)."""
    rows, width = weight.shape
    if width != hidden:
        raise ValueError(f"{path} has {width}-d rows but the base model's hidden size is {hidden}: it was trained "
                         "on another base than base_model_name_or_path")
    vocab = tokenizer.get_vocab()
    if all(t in vocab for t in SPECIAL_TOKENS):
        last = max(vocab[t] for t in SPECIAL_TOKENS)
        if rows <= last:
            raise ValueError(f"{path} has {rows} rows but the adapter's tokenizer has O1 tokens up to id {last}: the "
                             "trained O1 token rows are missing (a file from another checkpoint?)")
    elif rows < len(tokenizer):  # a tokenizer without the O1 tokens gets them after its last id: the file reaches there
        raise ValueError(f"{path} has {rows} rows but the adapter's tokenizer has {len(tokenizer)} tokens: the "
                         "trained O1 token rows are missing (a file from another checkpoint?)")


def _add_base_rows(module, base: torch.Tensor, tokens: int):
    """`module` (the file's Embedding or Linear) with the base's rows appended for the ids below `tokens` it lacks
    and the base has; ids the base lacks too get the mean row when the O1 tokens are added."""
    have, rows = module.weight.shape[0], min(tokens, base.shape[0])
    if rows > have:
        extra = base.detach()[have:rows].to(module.weight.dtype)
        module.weight = torch.nn.Parameter(torch.cat([module.weight.detach(), extra]))
        if isinstance(module, torch.nn.Embedding):
            module.num_embeddings = rows
        else:
            module.out_features = rows
    return module


def has_o1_tokens(adapter_dir) -> bool:
    """Whether an adapter was trained on the O1 prompt: it ships token rows, or its tokenizer (else its base's) has the
    four O1 tokens. A plain
    LoRA (a chat fine-tune) has none, and thinks with the chat prompt; `load_adapter` adds them either way."""
    from .loading import load_tokenizer  # loading imports this module
    adapter_dir = Path(adapter_dir).expanduser()
    if read_adapter_config(adapter_dir).get("trainable_token_indices") or any(
            embedding_file(adapter_dir, name).exists() for name in (EMB_FILE, ROWS_FILE)):
        return True  # it ships trained token rows: an O1 checkpoint, even without its tokenizer
    if any((adapter_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        vocab = load_tokenizer(adapter_dir).get_vocab()
    else:
        base = resolve_base_model(read_adapter_config(adapter_dir).get("base_model_name_or_path") or "")
        vocab = load_tokenizer(base).get_vocab()
    return all(token in vocab for token in SPECIAL_TOKENS)


def load_adapter(adapter_dir: Path, dtype) -> tuple[torch.nn.Module, object]:
    """(merged causal LM, tokenizer) of an adapter directory in any of the forms above."""
    from peft import PeftModel

    from transformers import AutoModelForCausalLM

    from .loading import load_tokenizer, unloadable  # loading imports this module
    from .quiet import peft_loading

    adapter_dir = Path(adapter_dir)
    base = resolve_base_model(read_adapter_config(adapter_dir).get("base_model_name_or_path") or "")
    if not base:
        raise ValueError(f"{adapter_dir / ADAPTER_CONFIG} has no base_model_name_or_path")
    if base.startswith(("/", "./", "../", "~")) and not Path(base).expanduser().exists():
        raise ValueError(f"{adapter_dir / ADAPTER_CONFIG}: base_model_name_or_path {base!r} does not exist; set it "
                         "to the base model's directory or hub id")
    if not any((adapter_dir / name).is_file() for name in (ADAPTER_WEIGHTS, "adapter_model.bin")):
        raise ValueError(f"{adapter_dir} has {ADAPTER_CONFIG} but no {ADAPTER_WEIGHTS}: the LoRA weights are missing")
    has_tok = any((adapter_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json"))
    base_named = f"the base model that {adapter_dir / ADAPTER_CONFIG} names"  # errors would name the adapter only
    tokenizer = load_tokenizer(adapter_dir) if has_tok else load_tokenizer(base, base_named)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except OSError as e:
        raise unloadable(base, e, base_named) from e
    emb_file, head_file = embedding_file(adapter_dir, EMB_FILE), embedding_file(adapter_dir, LM_HEAD_FILE)
    if emb_file.exists():
        embedding = load_module(emb_file, torch.nn.Embedding)
        base_in, base_out = model.get_input_embeddings().weight, model.get_output_embeddings()
        hidden = base_in.shape[1]
        _check_rows(emb_file, embedding.weight, hidden, tokenizer)
        model.set_input_embeddings(_add_base_rows(embedding, base_in, len(tokenizer)).to(dtype))
        if head_file.exists():
            head = load_module(head_file, torch.nn.Linear)
            _check_rows(head_file, head.weight, hidden, tokenizer)
            if base_out is not None:
                head = _add_base_rows(head, base_out.weight, len(tokenizer))
            model.set_output_embeddings(head.to(dtype))
            model.config.tie_word_embeddings = False
        _fit_output_rows(model, model.get_input_embeddings().weight.shape[0])
    add_special_tokens(model, tokenizer)
    rows_file = embedding_file(adapter_dir, ROWS_FILE)
    if rows_file.exists() and not emb_file.exists():  # compact form: only the O1 rows differ from the base
        _set_token_rows(model, tokenizer, rows_file, dtype)
    from safetensors import SafetensorError
    try:
        with peft_loading():
            model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False).merge_and_unload()
    except SafetensorError as e:  # its message names no file
        raise ValueError(f"{adapter_dir / ADAPTER_WEIGHTS} is not a readable safetensors file (truncated or "
                         f"corrupt?): {e}") from e
    except RuntimeError as e:
        if "size mismatch" not in str(e):
            raise
        raise ValueError(f"the LoRA weights in {adapter_dir} do not fit the base model {base!r} (tensor shapes differ: "
                         f"it was trained on another base); set base_model_name_or_path in {ADAPTER_CONFIG} to the "
                         f"model it was trained on. {str(e)[:300]}") from e
    return model, tokenizer
