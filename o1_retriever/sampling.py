"""Nucleus (top-p) sampling without sorting the whole vocabulary at every step.

transformers' top-p warper sorts all ~49k scores of every row at every step, and `multinomial` then draws over
all of them: on a CPU that was about 45% of the default model's thinking time (profiled: sort 24%, the draw 17%).
The nucleus nearly always lies among the few hundred likeliest tokens, so `sample_nucleus` takes those with
`topk`; when their mass reaches top_p, every token of the nucleus is among them and the distribution is exactly
the warper's. Rows where it does not (a very flat distribution) fall back to a full sort.

`NucleusSampler` plugs this into `generate()`: it draws the token itself and leaves it as the only finite
score, so generate runs greedy and keeps its own caches, padding and stopping rules. `generate` below is how
the thinker and the training experts call it.
"""
from __future__ import annotations

import torch

SAMPLER = "topk256-nucleus"  # part of the thought-cache key: thoughts drawn another way are another sample
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


def generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, n: int, temperature: float,
             top_p: float, **kwargs):
    """`model.generate` with n samples per prompt, each prompt's rows together (as `num_return_sequences`
    lays them out), drawn by `NucleusSampler`; temperature 0 is greedy. kwargs go to generate."""
    processors = [NucleusSampler(temperature, top_p)] if temperature > 0 else []  # a plain list suits both LMs
    return model.generate(input_ids=input_ids.repeat_interleave(n, 0),
                          attention_mask=attention_mask.repeat_interleave(n, 0), do_sample=False, temperature=None,
                          top_p=None, top_k=None, logits_processor=processors, **kwargs)


class NucleusSampler:
    """A `generate(logits_processor=[...])` entry that samples; pair it with `do_sample=False`."""

    def __init__(self, temperature: float, top_p: float):
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        token = sample_nucleus(scores, self.temperature, self.top_p)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, token[:, None], 0.0)
