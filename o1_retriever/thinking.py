"""Thought generation: k sampled thoughts per query, batched (the vectors come from `encoding`)."""
from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch

from .batching import in_batches
from .formatting import chat_thinking_prompt, thinking_prompt
from .sampling import generate, row_seeds
from .settings import InferenceSettings
from .text_window import read_prefixes, truncates_at_end

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


class Abandoned(RuntimeError):
    """Generation stopped early because nobody waits for its thoughts any more (see `stop_when`)."""


_stop = threading.local()  # the event `stop_when` set for generation on this thread, if any


@contextmanager
def stop_when(event: threading.Event):
    """Within the block, generation on this thread checks `event` between decode steps and, once it is set, stops and
    raises Abandoned: nothing partial is returned, so nothing partial is cached. The server sets it when every client
    of a batch in the engine has left. Without the block, generation runs as always."""
    previous = getattr(_stop, "event", None)
    _stop.event = event
    try:
        yield
    finally:
        _stop.event = previous


def _stopping(event: threading.Event | None) -> dict:
    """generate() arguments that end decoding once `event` is set (none without one)."""
    if event is None:
        return {}
    if event.is_set():
        raise Abandoned("every request waiting for these thoughts was abandoned")
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return {"stopping_criteria": StoppingCriteriaList([Stop()])}


GenerationConfig = InferenceSettings  # the former name of the sampling settings, still exported by the package


@dataclass
class Generation:
    """One batch of sampled thoughts before decoding, k rows per query."""
    prompt_ids: torch.Tensor  # (rows, prompt length), left-padded
    prompt_mask: torch.Tensor
    new_tokens: torch.Tensor  # (rows, generated length): the sampled ids, padding after a row's EOS
    cache: object  # the KV cache: the prompt and every generated token but the last


class Thinker:
    """Wraps a causal LM that writes thoughts, in the official or the chat prompt style."""

    def __init__(self, model, tokenizer, prompt_style: str = "official"):
        if prompt_style not in ("official", "chat"):
            raise ValueError(f"prompt_style={prompt_style!r} is not supported; use 'official' or 'chat'")
        self.model, self.tokenizer, self.prompt_style = model, tokenizer, prompt_style
        # Decode with a preallocated (static) KV cache through one compiled forward: compiled once per process
        # and input shape, so it pays off in long-lived processes and costs a one-shot call its compile time.
        self.compiled = False

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt(self, query: str) -> str:
        if self.prompt_style == "official":
            return thinking_prompt(query)
        return chat_thinking_prompt(self.tokenizer, query)

    @torch.inference_mode()
    def _generate(self, queries: list[str], k: int, config: InferenceSettings, static: bool = False):
        tok = self.tokenizer
        prompts = [self.prompt(q) for q in queries]
        if truncates_at_end(tok):  # a long prompt is cut first to a prefix holding every token the model reads
            prompts = read_prefixes(tok, prompts, config.prompt_max_length)
        batch = tok(prompts, return_tensors="pt", padding=True, truncation=True,
                    max_length=config.prompt_max_length, add_special_tokens=self.prompt_style == "official")
        batch = batch.to(self.device)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        stop = getattr(_stop, "event", None)
        # Each row samples from its own generator seeded by (seed, query, row): no global RNG, and a query's
        # thoughts do not depend on the rest of its batch.
        out = generate(self.model, ids, mask, n=k, temperature=config.temperature,
                       top_p=config.top_p, seeds=row_seeds(config.seed, queries, k),
                       max_new_tokens=config.max_new_tokens, min_new_tokens=config.min_new_tokens or None,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, return_dict_in_generate=True,
                       use_cache=True, **_stopping(stop),
                       **(compiled_decoding() if static else {}))
        if stop is not None and stop.is_set():  # stopped early: the thoughts are cut short, no answer to give
            raise Abandoned("every request waiting for these thoughts was abandoned")
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

    @torch.inference_mode()
    def generation(self, queries: list[str], k: int, config: InferenceSettings, static: bool = False) -> Generation:
        """k sampled continuations per query, not yet decoded, with the KV cache that produced them (a static
        cache has no room past max_new_tokens: only for callers that do not extend it)."""
        batch, out = self._generate(queries, k, config, static)
        mask = batch["attention_mask"].repeat_interleave(k, 0)
        return Generation(batch["input_ids"].repeat_interleave(k, 0), mask,
                          out.sequences[:, batch["input_ids"].shape[1]:], generated_cache(out))

    def think(self, queries: list[str], k: int, config: InferenceSettings, batch_size: int = 32,
              show_progress_bar: bool = False, read: Callable[[Generation], object] | None = None):
        """k thoughts per query; batches of `batch_size` queries (each expanded k times).
        `read`, when given, is called on each batch's `Generation` while its KV cache is alive (under the model
        lock); the call then returns (thoughts, [what `read` returned, per batch])."""
        def step(chunk):
            with model_lock(self.model):
                generation = self.generation(chunk, k, config, static=self.compiled and read is None)
                extra = read(generation) if read is not None else None
            flat = self._decode(generation.new_tokens)
            return [flat[i * k:(i + 1) * k] for i in range(len(chunk))], extra

        parts = in_batches(queries, batch_size, step, "Thinking", show_progress_bar)
        thoughts = [ts for part in parts for ts in part[0]]
        return thoughts if read is None else (thoughts, [part[1] for part in parts])


def compiled_decoding() -> dict:
    """generate() arguments for a static cache and a compiled forward, on any device (transformers compiles on
    its own only on accelerators)."""
    from transformers import CompileConfig
    config = CompileConfig(mode="default", dynamic=None)
    config._compile_all_devices = True
    return {"cache_implementation": "static", "compile_config": config}


# transformers renamed the KV cache from `past_key_values` to `cache` in 5.2x; pyproject's range spans both names.
def generated_cache(out):
    """The KV cache a `generate(..., return_dict_in_generate=True)` output holds, under either name."""
    return out.cache if hasattr(out, "cache") else out.past_key_values
