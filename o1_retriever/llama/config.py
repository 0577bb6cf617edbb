"""What the native Llama can load, and its settings from config.json / generation_config.json."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class LlamaConfig:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    vocab_size: int
    tie_word_embeddings: bool
    attention_bias: bool = False
    mlp_bias: bool = False
    eos_token_id: tuple[int, ...] = ()  # generate's defaults, from generation_config.json as in transformers
    pad_token_id: int | None = None
    model_type: str = "llama"


def unsupported_reason(path: Path) -> str | None:
    """Why the directory cannot load natively (None when it can)."""
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no readable config.json"
    if raw.get("model_type") != "llama":
        return f"model_type is {raw.get('model_type')!r}, not 'llama'"
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        return f"rope type {rope.get('rope_type') or rope.get('type')!r} (only the default RoPE is implemented)"
    if raw.get("hidden_act", "silu") != "silu" or raw.get("pretraining_tp", 1) != 1:
        return "a hidden_act other than silu or pretraining_tp > 1"
    if not (path / WEIGHTS).is_file():
        return f"no single {WEIGHTS} (sharded or .bin weights)"
    return None


def token_ids(value) -> tuple[int, ...]:
    return () if value is None else tuple(value) if isinstance(value, list) else (value,)


def read_config(path: Path) -> LlamaConfig:
    raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    gen_file = path / "generation_config.json"
    gen = json.loads(gen_file.read_text(encoding="utf-8")) if gen_file.is_file() else {}
    eos = token_ids(gen.get("eos_token_id", raw.get("eos_token_id")))
    pad = gen.get("pad_token_id", raw.get("pad_token_id"))
    heads = raw["num_attention_heads"]
    theta = (raw.get("rope_parameters") or {}).get("rope_theta", raw.get("rope_theta", 10000.0))
    return LlamaConfig(hidden_size=raw["hidden_size"], intermediate_size=raw["intermediate_size"],
                       num_hidden_layers=raw["num_hidden_layers"], num_attention_heads=heads,
                       num_key_value_heads=raw.get("num_key_value_heads") or heads,
                       head_dim=raw.get("head_dim") or raw["hidden_size"] // heads, rms_norm_eps=raw["rms_norm_eps"],
                       rope_theta=float(theta), vocab_size=raw["vocab_size"],
                       tie_word_embeddings=raw.get("tie_word_embeddings", False),
                       attention_bias=raw.get("attention_bias", False), mlp_bias=raw.get("mlp_bias", False),
                       eos_token_id=eos, pad_token_id=pad)
