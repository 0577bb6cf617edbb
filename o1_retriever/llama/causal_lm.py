"""The LM around the decoder: loading from a directory, logits, and greedy generation with a returned cache."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import WEIGHTS, LlamaConfig, read_config, token_ids, unsupported_reason
from .layers import Backbone, KVCache


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
        eos = token_ids(eos_token_id) or self.config.eos_token_id
        if pad_token_id is None:
            pad_token_id = self.config.pad_token_id
        if pad_token_id is None and eos:
            pad_token_id = eos[0]
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
