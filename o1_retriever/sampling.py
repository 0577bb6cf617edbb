"""Nucleus (top-p) sampling without sorting the whole vocabulary at every step.

transformers' top-p warper sorts all ~49k scores of every row at every step, and `multinomial` then draws over
all of them: on a CPU that is a large share of a small model's thinking time (benchmarks/HISTORY.md). The nucleus nearly always lies among the few hundred likeliest tokens, so `sample_nucleus` takes those with
`topk`; when their mass reaches top_p, every token of the nucleus is among them and the distribution is exactly
the warper's. Rows where it does not (a very flat distribution) fall back to a full sort.

`NucleusSampler` plugs this into `generate()`: it draws the token itself and leaves it as the only finite
score, so generate runs greedy and keeps its own caches, padding and stopping rules. `generate` below is how
the thinker and the training experts call it; the samples of one prompt share its KV cache there.

Given `seeds` (one per sampled row), every row draws from its own `torch.Generator`: one uniform per step,
turned into a token by the inverse CDF of that row's nucleus. A row's thought is then a function of its own
prompt and seed only: not of the other rows in its batch, of other threads, or of the process-wide RNG, which is
never touched (`row_seeds` derives the seeds from the query text, so a query thinks the same alone, in any batch,
and next to any cache hits). Without seeds, the global RNG draws (the training experts' way).
"""
from __future__ import annotations

import hashlib
import json
import secrets

import torch

# Part of the thought-cache key: thoughts drawn another way are another sample, so a new way of drawing gets a new
# name. "rowseed": each row draws from its own generator seeded from (seed, query, row).
SAMPLER = "topk256-nucleus-rowseed"
CANDIDATES = 256  # tokens looked at before falling back to a full sort (top-p 0.9 at T=0.7 rarely needs more)


def _keep(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Over probabilities sorted high to low: keep a token while the mass above it is below top_p (the
    warper's rule, which also always keeps the likeliest token)."""
    return (probs.cumsum(-1) - probs) < top_p


def nucleus(scores: torch.Tensor, top_p: float, candidates: int = CANDIDATES) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, token ids), each [rows, n]: the nucleus of every row of `scores` (logits after temperature),
    as unnormalised probabilities with zeros outside it. n is `candidates`, or the vocabulary size if any row
    needed the full sort."""
    logp = scores.float().log_softmax(-1)
    n = min(candidates, logp.shape[-1])
    top_logp, ids = logp.topk(n, dim=-1)  # sorted, likeliest first
    probs = top_logp.exp()
    covered = probs.sum(-1) >= top_p
    if n < logp.shape[-1] and not bool(covered.all()):  # a full sort serves the covered rows as well
        full_logp, ids = logp.sort(dim=-1, descending=True)
        probs = full_logp.exp()
    return probs * _keep(probs, top_p), ids


def sample_nucleus(scores: torch.Tensor, temperature: float, top_p: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row, drawn from softmax(scores / temperature) restricted to its top-p nucleus."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 to sample, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    scores = scores.float() / temperature
    if top_p >= 1:  # no nucleus to find: draw over the whole vocabulary
        return torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(1)
    weights, ids = nucleus(scores, top_p)
    choice = torch.multinomial(weights, 1, generator=generator)
    return ids.gather(1, choice).squeeze(1)


def row_seeds(seed: int | None, prompts: list[str], n: int) -> list[int]:
    """One seed per sampled row, rows laid out as `generate` lays them (each prompt's n rows together): a pure
    function of (seed, prompt, row number), so sample j of a query is the same at any k and in any batch.
    seed None: fresh random seeds from the OS (still without touching torch's global RNG)."""
    if seed is None:
        return [secrets.randbits(63) for _ in range(len(prompts) * n)]
    out = []
    for prompt in prompts:
        for j in range(n):
            digest = hashlib.sha256(json.dumps([seed, prompt, j], ensure_ascii=False).encode("utf-8", "surrogatepass"))
            out.append(int.from_bytes(digest.digest()[:8], "little") >> 1)  # 63 bits: manual_seed's range
    return out


def _draw(weights: torch.Tensor, ids: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw per row: the token whose cumulative weight first exceeds u * total. A zero-weight token
    spans an empty interval and is never drawn; float rounding at the top end falls back to the last kept one."""
    cdf = weights.double().cumsum(-1)
    target = uniforms[:, None] * cdf[:, -1:]
    idx = torch.searchsorted(cdf, target, right=True)
    idx = torch.minimum(idx, (weights > 0).sum(-1, keepdim=True) - 1)
    return ids.gather(1, idx).squeeze(1)


def sample_rows(scores: torch.Tensor, temperature: float, top_p: float,
                generators: list[torch.Generator]) -> torch.Tensor:
    """Like `sample_nucleus`, but row r draws one uniform from generators[r] (CPU generators: one small call per
    row, then the draw runs batched on the scores' device). Every step of a row is row-local: its own nucleus,
    its own fallback to a full sort, its own uniform."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 to sample, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if len(generators) != scores.shape[0]:
        raise ValueError(f"need one generator per row: {scores.shape[0]} rows, {len(generators)} generators")
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators]).to(scores.device)
    logp = (scores.float() / temperature).log_softmax(-1)
    vocab = logp.shape[-1]
    if top_p >= 1:
        order = torch.arange(vocab, device=logp.device).expand_as(logp)
        return _draw(logp.exp(), order, u)
    n = min(CANDIDATES, vocab)
    top_logp, ids = logp.topk(n, dim=-1)
    probs = top_logp.exp()
    tokens = _draw(probs * _keep(probs, top_p), ids, u)
    flat = ~(probs.sum(-1) >= top_p)
    if n < vocab and bool(flat.any()):  # only these rows pay for a full sort
        rows = flat.nonzero().squeeze(1)
        full_logp, full_ids = logp[rows].sort(dim=-1, descending=True)
        full = full_logp.exp()
        tokens[rows] = _draw(full * _keep(full, top_p), full_ids, u[rows])
    return tokens


def generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, n: int, temperature: float,
             top_p: float, seeds: list[int] | None = None, share_prompt: bool = True, **kwargs):
    """`model.generate` with n samples per prompt, each prompt's rows together (as `num_return_sequences`
    lays them out), drawn by `NucleusSampler`; temperature 0 is greedy. `seeds` (one per row, see `row_seeds`)
    gives every row its own generator. kwargs go to generate.

    share_prompt: the n samples of a prompt share its KV cache, so the prompt is read once, not n times (the same
    tokens: tested). Not with a static cache, which generate fills itself, nor with right padding."""
    processors = [NucleusSampler(temperature, top_p, seeds)] if temperature > 0 else []
    if share_prompt and n > 1 and "cache_implementation" not in kwargs and bool(attention_mask[:, -1].all()):
        kwargs.update(_shared_prompt_cache(model, input_ids, attention_mask, n))
    return model.generate(input_ids=input_ids.repeat_interleave(n, 0),
                          attention_mask=attention_mask.repeat_interleave(n, 0), do_sample=False, temperature=None,
                          top_p=None, top_k=None, logits_processor=processors, **kwargs)


def _shared_prompt_cache(model, ids: torch.Tensor, mask: torch.Tensor, n: int) -> dict:
    """generate()'s cache argument: the KV cache of every prompt but its last token (left padding: every row's last
    token is real), each row repeated n times; generate then starts from that last token."""
    from transformers import DynamicCache

    from .encoding import cache_argument, padded_positions
    cache, keyword = DynamicCache(config=model.config), cache_argument(model)
    positions = padded_positions(mask)
    with torch.no_grad():
        model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True,
              logits_to_keep=1, **{keyword: cache})
    cache.batch_repeat_interleave(n)
    return {keyword: cache}


class NucleusSampler:
    """A `generate(logits_processor=[...])` entry that samples; pair it with `do_sample=False`."""

    def __init__(self, temperature: float, top_p: float, seeds: list[int] | None = None):
        self.temperature, self.top_p = temperature, top_p
        self.generators = None if seeds is None else [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.generators is None:
            token = sample_nucleus(scores, self.temperature, self.top_p)
        else:
            token = sample_rows(scores, self.temperature, self.top_p, self.generators)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, token[:, None], 0.0)
