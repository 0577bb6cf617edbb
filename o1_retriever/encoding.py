"""Text -> vector. `LMEncoder` pools the `<emb>` state of a causal LM, from text or straight from the KV cache of
the thoughts it just generated (the fused step); `SentenceEncoder` wraps a sentence-transformers model for the
composite ("separate generator + retriever") mode, and `EnsembleEncoder` several of them (`sentence_encoding.py`,
importable from here)."""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import torch

from .batching import in_batches
from .formatting import EMB
from .sentence_encoding import EnsembleEncoder, SentenceEncoder, load_encoder  # noqa: F401  (importable from here)
from .text_window import read_prefixes


def padded_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch, counted over real tokens only, as `generate` numbers a prompt: a text's
    hidden states then do not depend on how much padding its batch neighbours add."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


class LMEncoder:
    """Last-token (`<emb>`) pooling over a causal LM's backbone; left padding; length-sorted batches."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.backbone = getattr(model, model.base_model_prefix, model)
        self.emb_id = tokenizer.convert_tokens_to_ids(EMB)
        self._warned_truncation = False

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @property
    def live_state(self) -> tuple:
        """What changes its vectors in place without changing the construction-time fingerprint: the weights' dtype
        (`model.to(torch.bfloat16)`). Cheap: read on every encode call."""
        return (str(next(self.model.parameters()).dtype),)

    def tokenize(self, texts: list[str], max_length: int) -> list[list[int]]:
        """The official rule: keep the first max_length tokens of the text, then append `<emb>` (so up to
        max_length + 1 ids), which is what the published checkpoints were evaluated with. A long text is cut first to
        a prefix holding those tokens (`text_window`): a huge one then costs what its window costs."""
        read = read_prefixes(self.tokenizer, texts, max_length)
        ids = self.tokenizer(read, add_special_tokens=True, truncation=False)["input_ids"]
        shortened = any(len(a) < len(b) for a, b in zip(read, texts))
        if (shortened or any(len(x) > max_length for x in ids)) and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(f"Some inputs are longer than {max_length} tokens and were truncated "
                          "(raise max_length to keep more)", stacklevel=3)
        return [x[:max_length] + [self.emb_id] for x in ids]

    @torch.inference_mode()
    def _forward(self, batch: list[list[int]]) -> torch.Tensor:
        width = max(map(len, batch))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch], device=self.device)
        positions = padded_positions(mask)
        hidden = self.backbone(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
        return hidden[:, -1].float()

    def encode(self, texts: list[str], max_length: int, batch_size: int = 32,
               show_progress_bar: bool = False, role: str = "query") -> np.ndarray:
        """L2-normalised `<emb>` vectors, in input order. CUDA OOM halves the batch and retries. `role` changes
        nothing here: the O1 format marks a query by its own tags."""
        if not texts:  # the tokenizer fails on an empty batch; sentence-transformers' shape is (0, dim)
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self.tokenize(texts, max_length)
        order = np.argsort([-len(x) for x in ids], kind="stable")  # longest first: OOM shows up at once
        out = np.zeros((len(texts), self.dim), dtype=np.float32)

        def step(idx):
            out[idx] = torch.nn.functional.normalize(self._forward([ids[i] for i in idx]), dim=-1).cpu().numpy()

        in_batches(order, batch_size, step, "Embedding", show_progress_bar)
        return out

    @torch.inference_mode()
    def encode_generated(self, generation) -> tuple[torch.Tensor, list[list[int]]]:
        """The `<emb>` states of `prompt + thought + EOS <emb>` for a `thinking.Generation` of this very model,
        read from its KV cache. The cache already holds `prompt + thought`; one more forward step over
        `[last?, EOS, <emb>]` yields the same last hidden state as re-encoding the whole text, at a fraction of the
        cost. Also returns, per row, the token ids the vector was read from, so a caller can check they equal a
        fresh tokenization of the decoded text (they differ when the model wrote special tokens or byte fragments
        that decoding drops)."""
        eos, new = self.tokenizer.eos_token_id, generation.new_tokens
        vectors = self._emb_step(generation.prompt_mask, new, generation.cache, eos)
        used = []
        for row, mask, gen in zip(generation.prompt_ids.tolist(), generation.prompt_mask.tolist(), new.tolist()):
            gen = gen[: gen.index(eos)] if eos in gen else gen
            used.append([t for t, m in zip(row, mask) if m] + gen + [eos, self.emb_id])
        return vectors, used

    def _emb_step(self, prompt_mask, new, cache, eos) -> torch.Tensor:
        """One forward step after generation; slots after a row's EOS (padding while other rows kept generating)
        are masked out."""
        n, gen_len = new.shape
        dev = new.device
        is_eos = new == eos
        finished = is_eos.any(1)
        # Thought length: generated tokens before the first EOS (all of them if none came).
        thought_len = torch.where(finished, is_eos.float().argmax(1), torch.full((n,), gen_len, device=dev))
        cached = cache.get_seq_length() - prompt_mask.shape[1]  # generated tokens already in the cache
        gen_mask = (torch.arange(cached, device=dev)[None] < thought_len[:, None]).long()
        # The last generated token is never in the cache: re-feed it for unfinished sequences.
        needs_last = thought_len > cached
        last = new[:, -1]
        step_ids = torch.stack([torch.where(needs_last, last, torch.full_like(last, eos)),
                                torch.full_like(last, eos), torch.full_like(last, self.emb_id)], 1)
        step_mask = torch.stack([needs_last.long(), torch.ones_like(last), torch.ones_like(last)], 1)
        mask = torch.cat([prompt_mask, gen_mask, step_mask], 1)
        real_before = prompt_mask.sum(1) + gen_mask.sum(1)
        positions = real_before[:, None] + (torch.cumsum(step_mask, 1) - 1)
        positions = positions.clamp(min=0)
        out = self.backbone(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                            use_cache=True, **{cache_argument(self.backbone): cache})
        return out.last_hidden_state[:, -1].float()


def cache_argument(backbone) -> str:
    """The KV cache's keyword for this backbone's forward (`cache` or `past_key_values`, as for
    `thinking.generated_cache`). Older transformers swallow an unknown `cache=` into **kwargs and would embed the
    step without its context."""
    if hasattr(backbone, "get_base_model"):  # a PEFT wrapper's forward takes **kwargs: ask the model inside
        backbone = backbone.get_base_model()
    return "cache" if "cache" in inspect.signature(backbone.forward).parameters else "past_key_values"
