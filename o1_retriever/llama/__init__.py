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
from .causal_lm import GenerateOutput, LlamaForCausalLM
from .config import LlamaConfig, read_config, unsupported_reason
from .layers import KVCache

__all__ = ["GenerateOutput", "KVCache", "LlamaConfig", "LlamaForCausalLM", "read_config", "unsupported_reason"]
