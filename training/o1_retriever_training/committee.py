"""The retrieval committee that picks the best of N candidate thoughts.

Each member scores every candidate against the positive passage. Soft vote: softmax over the
candidates per member (scores divided by the member's temperature), summed over members, argmax.
Hard vote: each member votes for its argmax; the majority wins, ties go to the higher soft total.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOTES = ("soft", "hard")


@dataclass
class Decision:
    chosen: int
    scores: dict[str, list[float]]          # raw member scores, per candidate
    probabilities: dict[str, list[float]]   # per-member softmax over candidates
    votes: dict[str, int]                   # each member's argmax
    total: list[float]                      # soft total per candidate


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def vote(scores: dict[str, np.ndarray], how: str = "soft", temperatures: dict[str, float] | None = None) -> Decision:
    """Pure voting on given scores (what the hand-computed tests check)."""
    if how not in VOTES:
        raise ValueError(f"vote={how!r} is not supported; use one of {list(VOTES)}")
    if not scores:
        raise ValueError("the committee needs at least one member")
    sizes = {len(v) for v in scores.values()}
    if len(sizes) != 1 or sizes.pop() < 2:
        raise ValueError(f"every member must score the same N >= 2 candidates, got sizes "
                         f"{ {k: len(v) for k, v in scores.items()} }")
    temperatures = temperatures or {}
    probs = {m: softmax(np.asarray(s, dtype=np.float64) / temperatures.get(m, 1.0)) for m, s in scores.items()}
    total = sum(probs.values())
    votes = {m: int(np.argmax(s)) for m, s in scores.items()}
    if how == "soft":
        chosen = int(np.argmax(total))
    else:
        counts = np.bincount(list(votes.values()), minlength=len(total))
        tied = np.flatnonzero(counts == counts.max())
        chosen = int(tied[np.argmax(total[tied])])
    return Decision(chosen, {m: [float(x) for x in s] for m, s in scores.items()},
                    {m: p.tolist() for m, p in probs.items()}, votes, total.tolist())


class Committee:
    def __init__(self, members: list, how: str = "soft"):
        if how not in VOTES:
            raise ValueError(f"vote={how!r} is not supported; use one of {list(VOTES)}")
        if not members:
            raise ValueError("the committee needs at least one member")
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"committee member names must be unique, got {names}")
        self.members, self.how = members, how

    def decide_many(self, groups: list[tuple[list[str], str]]) -> list[Decision]:
        """groups: (candidates, positive passage) pairs; one Decision each."""
        for cands, _ in groups:
            if len(cands) < 2:
                raise ValueError(f"the committee needs N >= 2 candidates per query, got {len(cands)}")
        per_member = {m.name: m.score_many(groups) for m in self.members}
        temps = {m.name: m.temperature for m in self.members}
        return [vote({name: s[i] for name, s in per_member.items()}, self.how, temps) for i in range(len(groups))]

    def decide(self, candidates: list[str], positive: str) -> Decision:
        return self.decide_many([(candidates, positive)])[0]
