"""Thought generation: k sampled thoughts per query, batched, and the fused think-and-embed step."""
from __future__ import annotations

import inspect
import threading
import weakref

import torch

from .batching import in_batches
from .formatting import EMB, chat_thinking_prompt, thinking_prompt
from .sampling import generate, row_seeds
from .settings import InferenceSettings

_LOCKS: "weakref.WeakKeyDictionary[torch.nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model) -> threading.RLock:
    """One lock per model instance, shared by everything that runs it. Two threads running one model at once
    share its intra-op thread pool (numerics then depend on who else is running) and, in transformers, mutable
    per-call state; a forward at a time costs nothing on a CPU that one forward already keeps busy."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


GenerationConfig = InferenceSettings  # the former name of the sampling settings, still exported by the package


class Thinker:
    """Wraps a causal LM that writes thoughts, in the official or the chat prompt style."""

    def __init__(self, model, tokenizer, prompt_style: str = "official"):
        if prompt_style not in ("official", "chat"):
            raise ValueError(f"prompt_style={prompt_style!r} is not supported; use 'official' or 'chat'")
        self.model, self.tokenizer, self.prompt_style = model, tokenizer, prompt_style

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt(self, query: str) -> str:
        if self.prompt_style == "official":
            return thinking_prompt(query)
        return chat_thinking_prompt(self.tokenizer, query)

    @torch.inference_mode()
    def _generate(self, queries: list[str], k: int, config: InferenceSettings):
        tok = self.tokenizer
        batch = tok([self.prompt(q) for q in queries], return_tensors="pt", padding=True, truncation=True,
                    max_length=config.prompt_max_length, add_special_tokens=self.prompt_style == "official")
        batch = batch.to(self.device)
        # Each row samples from its own generator seeded by (seed, query, row): no global RNG, and a query's
        # thoughts do not depend on the rest of its batch.
        out = generate(self.model, batch["input_ids"], batch["attention_mask"], n=k, temperature=config.temperature,
                       top_p=config.top_p, seeds=row_seeds(config.seed, queries, k),
                       max_new_tokens=config.max_new_tokens, pad_token_id=tok.pad_token_id,
                       eos_token_id=tok.eos_token_id, return_dict_in_generate=True, use_cache=True)
        return batch, out

    def _decode(self, new_tokens: torch.Tensor) -> list[str]:
        """Thought texts up to EOS. In the official style, exactly as generated (the official inference re-encodes
        the decoded output unchanged): a trained model often opens with a spaced token (' rise'), and stripping
        that space changes the tokens the query vector is read from, and voids the fused vector."""
        eos = self.tokenizer.eos_token_id
        texts = []
        for row in new_tokens.tolist():
            if eos in row:
                row = row[: row.index(eos)]
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            texts.append(text if self.prompt_style == "official" else text.strip())
        return texts

    def think(self, queries: list[str], k: int, config: InferenceSettings, batch_size: int = 32,
              show_progress_bar: bool = False) -> list[list[str]]:
        """k thoughts per query; batches of `batch_size` queries (each expanded k times)."""
        def step(chunk):
            with model_lock(self.model):
                batch, out = self._generate(chunk, k, config)
            flat = self._decode(out.sequences[:, batch["input_ids"].shape[1]:])
            return [flat[i * k:(i + 1) * k] for i in range(len(chunk))]

        return [ts for part in in_batches(queries, batch_size, step, "Thinking", show_progress_bar) for ts in part]

    @torch.inference_mode()
    def think_and_embed(self, queries: list[str], k: int, config: InferenceSettings, batch_size: int = 32,
                        show_progress_bar: bool = False) -> tuple[list[list[str]], torch.Tensor, list[list[int]]]:
        """Thoughts plus their `<emb>` vectors from the generation's KV cache (official style only).

        The cache already holds `prompt + thought`; one more forward step over `[last?, EOS, <emb>]`
        yields the same last hidden state as re-encoding the whole text, at a fraction of the cost.
        Slots after a sequence's EOS (padding while others kept generating) are masked out.
        Also returns, per sequence, the token ids the vector was read from, so a caller can check
        they equal a fresh tokenization of the decoded text (they differ when the model wrote
        special tokens or byte fragments that decoding drops).
        """
        if self.prompt_style != "official":
            raise ValueError("fused think-and-embed needs the official prompt style (a trained model)")
        tok = self.tokenizer
        eos, emb = tok.eos_token_id, tok.convert_tokens_to_ids(EMB)

        def step(chunk):
            with model_lock(self.model):
                batch, out = self._generate(chunk, k, config)
                prompt_len = batch["input_ids"].shape[1]
                new = out.sequences[:, prompt_len:]
                prompt_mask = batch["attention_mask"].repeat_interleave(k, 0)
                vectors = self._emb_step(prompt_mask, new, generated_cache(out), eos, emb)
            flat = self._decode(new)
            used = []
            prompts = batch["input_ids"].repeat_interleave(k, 0)
            for row, mask, gen in zip(prompts.tolist(), prompt_mask.tolist(), new.tolist()):
                gen = gen[: gen.index(eos)] if eos in gen else gen
                used.append([t for t, m in zip(row, mask) if m] + gen + [eos, emb])
            return [flat[i * k:(i + 1) * k] for i in range(len(chunk))], vectors, used

        parts = in_batches(queries, batch_size, step, "Thinking", show_progress_bar)
        thoughts = [ts for part in parts for ts in part[0]]
        used_ids = [ids for part in parts for ids in part[2]]
        return thoughts, torch.cat([part[1] for part in parts]), used_ids

    def _emb_step(self, prompt_mask, new, cache, eos, emb) -> torch.Tensor:
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
                                torch.full_like(last, eos), torch.full_like(last, emb)], 1)
        step_mask = torch.stack([needs_last.long(), torch.ones_like(last), torch.ones_like(last)], 1)
        mask = torch.cat([prompt_mask, gen_mask, step_mask], 1)
        real_before = prompt_mask.sum(1) + gen_mask.sum(1)
        positions = real_before[:, None] + (torch.cumsum(step_mask, 1) - 1)
        positions = positions.clamp(min=0)
        backbone = getattr(self.model, self.model.base_model_prefix)
        out = backbone(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                       use_cache=True, **{cache_argument(backbone): cache})
        return out.last_hidden_state[:, -1].float()


# transformers renamed the KV cache from `past_key_values` to `cache` in 5.2x; pyproject's range spans both names.
def generated_cache(out):
    """The KV cache a `generate(..., return_dict_in_generate=True)` output holds, under either name."""
    return out.cache if hasattr(out, "cache") else out.past_key_values


def cache_argument(backbone) -> str:
    """The KV cache's keyword for this backbone's forward. Older transformers swallow an unknown `cache=` into
    **kwargs and would embed the step without its context."""
    return "cache" if "cache" in inspect.signature(backbone.forward).parameters else "past_key_values"

