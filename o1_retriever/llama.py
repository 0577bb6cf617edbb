"""A small Llama for inference that loads without transformers' model code.

Why: a warm `O1Embedder.from_pretrained()` spent ~3 of its ~4 s importing transformers' modeling stack
(torch.distributed.tensor, dynamo, sympy, scipy come in through it), not loading weights. This module reads a
plain Llama directory (config.json + model.safetensors) into a module that mirrors transformers'
LlamaForCausalLM op for op: the same parameter names (so `fingerprint` and every cache key stay the same) and
the same RMSNorm / RoPE / SDPA order and masks (so hidden states agree bit for bit on the same device).

It offers only what o1-retriever calls: the backbone forward (`.model(...)` -> `.last_hidden_state`, with a
KV cache) and a greedy `generate` that applies logits processors (our nucleus sampler draws in one) and
returns the cache. Training, quantization, rope scaling and other architectures load with transformers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

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


def _ids(value) -> tuple[int, ...]:
    return () if value is None else tuple(value) if isinstance(value, list) else (value,)


def read_config(path: Path) -> LlamaConfig:
    raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    gen_file = path / "generation_config.json"
    gen = json.loads(gen_file.read_text(encoding="utf-8")) if gen_file.is_file() else {}
    eos = _ids(gen.get("eos_token_id", raw.get("eos_token_id")))
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


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class KVCache:
    """Per-layer keys and values, grown by concatenation (as transformers' DynamicCache)."""

    def __init__(self, layers: int):
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers

    def update(self, key, value, layer: int):
        if self.keys[layer] is not None:
            key = torch.cat([self.keys[layer], key], dim=-2)
            value = torch.cat([self.values[layer], value], dim=-2)
        self.keys[layer], self.values[layer] = key, value
        return key, value

    def get_seq_length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[-2]


class Attention(nn.Module):
    def __init__(self, c: LlamaConfig, layer: int):
        super().__init__()
        self.layer, self.head_dim = layer, c.head_dim
        self.groups = c.num_attention_heads // c.num_key_value_heads
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * c.head_dim, bias=c.attention_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.attention_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.attention_bias)
        self.o_proj = nn.Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=c.attention_bias)

    def forward(self, x, cos, sin, mask, cache: KVCache | None):
        b, q_len, _ = x.shape
        shape = (b, q_len, -1, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        if cache is not None:
            k, v = cache.update(k, v, self.layer)
        # The same kernel choice as transformers' sdpa path on CPU, so results match it exactly.
        extra, packed = {}, False
        if self.groups > 1:
            if mask is None and k.shape[-1] <= 256:
                extra["enable_gqa"] = True
            elif q_len == 1:  # one query token: attend per key/value head, n_rep queries each
                q, packed = q.reshape(b, -1, self.groups, self.head_dim), True
            else:
                k = k.repeat_interleave(self.groups, dim=1)
                v = v.repeat_interleave(self.groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.head_dim ** -0.5,
                                             is_causal=q_len > 1 and mask is None, **extra)
        if packed:
            out = out.reshape(b, -1, q_len, self.head_dim)
        return self.o_proj(out.transpose(1, 2).reshape(b, q_len, -1))


class MLP(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=c.mlp_bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: LlamaConfig, layer: int):
        super().__init__()
        self.self_attn = Attention(c, layer)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(self, x, cos, sin, mask, cache):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


@dataclass
class BackboneOutput:
    last_hidden_state: torch.Tensor
    cache: KVCache | None


def _mask(attention_mask, q_len: int, offset: int, device):
    """Boolean [b, 1, q, kv] mask (True = attend), or None where SDPA's own causal flag (or nothing) does the
    same: no padding, and either one query token or no cache (transformers skips the mask in those cases)."""
    if attention_mask is None or bool(attention_mask.all()):
        if q_len == 1 or offset == 0:
            return None
        attention_mask = torch.ones(1, offset + q_len, dtype=torch.bool, device=device)
    kv_len = attention_mask.shape[1]
    causal = torch.arange(kv_len, device=device)[None] <= torch.arange(offset, offset + q_len, device=device)[:, None]
    return (causal[None] & attention_mask.bool()[:, None, :])[:, None]


class Backbone(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        # An explicit weight skips the random init: on the meta device that init (normal_) runs a python
        # kernel that imports torch._dynamo, about a second of the load.
        weight = torch.empty(c.vocab_size, c.hidden_size)
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size, _weight=weight)
        self.layers = nn.ModuleList(DecoderLayer(c, i) for i in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        # device="cpu" even under from_pretrained's meta device: a real buffer, and no python meta kernel.
        steps = torch.arange(0, c.head_dim, 2, dtype=torch.float, device="cpu")
        self.register_buffer("inv_freq", 1.0 / (c.rope_theta ** (steps / c.head_dim)), persistent=False)

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache: KVCache | None = None,
                use_cache: bool = False) -> BackboneOutput:
        x = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = KVCache(len(self.layers))
        offset = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:  # transformers' default: positions continue the cache, padding or not
            position_ids = (torch.arange(x.shape[1], device=x.device) + offset)[None]
        freqs = position_ids[..., None].float() * self.inv_freq.to(x.device)
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        mask = _mask(attention_mask, x.shape[1], offset, x.device)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, cache)
        return BackboneOutput(self.norm(x), cache)


@dataclass
class CausalLMOutput:
    logits: torch.Tensor
    cache: KVCache | None


@dataclass
class GenerateOutput:
    sequences: torch.Tensor
    cache: KVCache


class LlamaForCausalLM(nn.Module):
    """Parameter names as transformers' LlamaForCausalLM: `model.*` and `lm_head.weight`."""
    base_model_prefix = "model"
    generation_config = None  # add_special_tokens() looks for it

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def get_memory_footprint(self) -> int:
        """Bytes of parameters and buffers (a tied weight counted once), as transformers reports it."""
        tensors = {id(t): t for t in [*self.parameters(), *self.buffers()]}.values()
        return sum(t.numel() * t.element_size() for t in tensors)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache: KVCache | None = None,
                use_cache: bool = False, logits_to_keep: int = 0) -> CausalLMOutput:
        """Next-token logits for every position (the last `logits_to_keep` if > 0), as transformers' model."""
        out = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                         use_cache=use_cache)
        hidden = out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        return CausalLMOutput(self.lm_head(hidden), out.cache)

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> "LlamaForCausalLM":
        from safetensors.torch import load_file
        path = Path(path)
        reason = unsupported_reason(path)
        if reason:
            raise ValueError(f"{path} cannot load with the native Llama: {reason}")
        with torch.device("meta"):
            model = cls(read_config(path))
        state = load_file(str(path / WEIGHTS))
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        state = {name: t.to(dtype) for name, t in state.items()}
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        if unexpected or set(missing) - ({"lm_head.weight"} if model.config.tie_word_embeddings else set()):
            raise ValueError(f"{path}/{WEIGHTS} does not match the config: missing {missing}, unexpected {unexpected}")
        if model.config.tie_word_embeddings:
            model.lm_head.weight = model.model.embed_tokens.weight
        return model.eval()

    @torch.inference_mode()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 max_new_tokens: int | None = None, eos_token_id: int | list[int] | None = None,
                 pad_token_id: int | None = None, logits_processor=(), do_sample: bool = False,
                 use_cache: bool = True, return_dict_in_generate: bool = False, **unset):
        """Greedy decoding over the processed scores, with transformers' conventions (a sampler in
        `logits_processor` makes it sample): positions from the attention mask, so left padding does not shift
        them; finished rows get `pad_token_id`; stops when every row has written an EOS or after max_new_tokens;
        EOS and pad default to the model's generation_config.json. Returns the sequences (prompt included), or
        with return_dict_in_generate an object with `.sequences` and the KV `.cache`, which holds every token
        but the last one generated."""
        if do_sample or not use_cache:
            raise ValueError("the native Llama generates greedily with a cache (do_sample=False, use_cache=True); "
                             "sample through a logits processor, or load with backend='transformers'")
        if any(v is not None for v in unset.values()):
            raise TypeError(f"unsupported generate arguments for the native Llama: {sorted(unset)}; "
                            "load with backend='transformers' for them")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        eos = _ids(eos_token_id) or self.config.eos_token_id
        if pad_token_id is None:
            pad_token_id = self.config.pad_token_id if self.config.pad_token_id is not None else (eos or (None,))[0]
        if pad_token_id is None:
            raise ValueError("pass pad_token_id (the model's generation_config.json names no pad or EOS token)")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        out = self.model(input_ids, attention_mask=mask, position_ids=positions, use_cache=True)
        cache, sequences = out.cache, input_ids
        eos = torch.tensor(eos, device=input_ids.device)
        unfinished = torch.ones(len(input_ids), dtype=torch.long, device=input_ids.device)
        for step in range(max_new_tokens):
            logits = self.lm_head(out.last_hidden_state[:, -1:])[:, -1].float()
            for process in logits_processor:
                logits = process(sequences, logits)
            token = logits.argmax(-1) * unfinished + pad_token_id * (1 - unfinished)
            sequences = torch.cat([sequences, token[:, None]], dim=1)
            unfinished = unfinished * ~torch.isin(token, eos)
            if step == max_new_tokens - 1 or not bool(unfinished.any()):
                break
            mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
            positions = positions[:, -1:] + 1
            out = self.model(token[:, None], attention_mask=mask, position_ids=positions, cache=cache)
        return GenerateOutput(sequences, cache) if return_dict_in_generate else sequences
