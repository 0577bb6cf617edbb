"""The official O1 Embedder token format, in one place.

Every string that reaches the model goes through these helpers, so the thinking prompt, the
query-embedding input and the document input cannot drift apart between inference and training.
"""
from __future__ import annotations

import torch

QUERY_START, QUERY_END, THOUGHT, EMB = "<query>", "</query>", "<thought>", "<emb>"
SPECIAL_TOKENS = [QUERY_START, QUERY_END, THOUGHT, EMB]

# An untrained thinker has never seen <query>/<thought>; it is asked through its chat template.
CHAT_INSTRUCTION = (
    "Write a short passage (two or three sentences) that would answer the query below. "
    "Do not repeat the query.\nQuery: {query}"
)


def thinking_prompt(query: str) -> str:
    """Official prompt that makes a trained model write a thought: `<query>q</query><thought>`."""
    return f"{QUERY_START}{query}{QUERY_END}{THOUGHT}"


def query_embedding_text(query: str, thought: str, eos_token: str) -> str:
    """Text whose `<emb>` state is the query vector (the `<emb>` id is appended after tokenizing).

    An empty thought gives the query-only embedding, as in the official k=0 setting.
    """
    return f"{thinking_prompt(query)}{thought}{eos_token}"


def chat_thinking_prompt(tokenizer, query: str) -> str:
    """Prompt for an untrained thinker: its own chat template around a plain instruction."""
    message = CHAT_INSTRUCTION.format(query=query)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
    return f"{message}\nPassage:"


def add_special_tokens(model, tokenizer) -> bool:
    """Add the four O1 tokens, a pad token and left padding. Returns True if tokens were missing.

    New embedding rows start at the mean of the existing rows, which keeps an untrained model's
    `<emb>` state in-distribution (set here directly: transformers' covariance-sampled init is slow for a large vocabulary).
    """
    vocab = tokenizer.get_vocab()  # a fresh 49k-entry dict per call: build it once
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    known = len(tokenizer)
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if model is not None:
        rows = model.get_input_embeddings().weight.shape[0]
        # A vocabulary padded to a round size (Qwen, Gemma) already has rows for the new ids: unused, untrained ones.
        fresh = [i for i in tokenizer.convert_tokens_to_ids(missing) if i < rows]
        if rows < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            fresh += range(rows, len(tokenizer))
        if fresh:
            with torch.no_grad():
                for layer in {model.get_input_embeddings(), model.get_output_embeddings()} - {None}:
                    layer.weight[fresh] = layer.weight[:min(known, rows)].mean(0, keepdim=True)
    if model is not None and model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return bool(missing)
