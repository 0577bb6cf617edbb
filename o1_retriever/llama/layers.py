"""The decoder, op for op as transformers' Llama (so the numbers agree exactly), plus its KV cache."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .config import LlamaConfig


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
