"""Is a row's gain over a baseline row more than chance? A paired test on per-query nDCG@10.

The test is Fisher's paired randomization test, two-sided, as ranx runs it (`compare(stat_test="fisher")`) and as
Smucker et al. (CIKM 2007) recommend for IR: if the two systems were interchangeable, each query's difference would
be as likely negative as positive, so the p-value is the share of sign assignments (one flip per query) whose
|mean difference| reaches the observed one. Up to 2^13 assignments are all counted (an exact p); past that,
RESAMPLES seeded random ones give p = (hits + 1) / (RESAMPLES + 1), as scipy.stats.permutation_test reports it (never
0: the observed assignment is one of them). ranx's win/tie/loss counts come with it. P-values are not corrected for
the several comparisons of one run.

Each row is compared with BM25 and the plain encoder (the `--baseline` rows) and with its own system at k=0 (the same
model without thinking: which queries gain from the thoughts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRIC = "ndcg@10"
RESAMPLES = 10_000
BASELINE_SYSTEMS = ("bm25", "encoder")  # in the order a row is compared with them
_BLOCK_BYTES = 32 << 20  # the most memory one block of random signs takes


@dataclass
class PairedTest:
    delta: float    # mean(treatment - control) over the queries
    p_value: float  # two-sided
    wins: int       # queries where the treatment scores higher
    ties: int
    losses: int
    exact: bool     # every sign assignment counted, none sampled


def paired_randomization_test(treatment, control, resamples: int = RESAMPLES, seed: int = 0) -> PairedTest:
    """Two-sided paired randomization test of `treatment` against `control`, one score per query in the same order."""
    a, b = np.asarray(treatment, dtype=np.float64), np.asarray(control, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or not len(a):
        raise ValueError(f"treatment and control must be two equally long, non-empty lists of per-query scores, got "
                         f"shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-query scores must be finite numbers (NaN or inf found)")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive int, got {resamples!r}")
    diff = a - b
    moved = diff[diff != 0]  # a tie flips to itself: it cannot change the statistic
    observed = abs(moved.sum())
    # the sums below add the same numbers in another order: equal ones may differ in the last bits
    reach = observed - 1e-9 * np.abs(moved).sum()
    n = len(moved)
    if 2 ** n <= resamples:  # every assignment: 2^0 = 1 when nothing differs, and then p = 1
        signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0
        hits, total, exact = int((np.abs(signs @ moved) >= reach).sum()), 2 ** n, True
    else:
        rng = np.random.default_rng(seed % (1 << 64))  # eval's --seed may be negative; numpy takes no such seed
        hits, done = 0, 0
        block = max(1, _BLOCK_BYTES // (8 * n))
        while done < resamples:
            rows = min(block, resamples - done)
            # one random bit per query and assignment: a sum with signs is 2 * (the sum over the 1 bits) - the total
            bits = np.unpackbits(np.frombuffer(rng.bytes((rows * n + 7) // 8), dtype=np.uint8))[:rows * n]
            sums = 2.0 * (bits.reshape(rows, n).astype(np.float64) @ moved) - moved.sum()
            hits += int((np.abs(sums) >= reach).sum())
            done += rows
        hits, total, exact = hits + 1, resamples + 1, False
    return PairedTest(float(diff.mean()), hits / total, int((diff > 0).sum()), int((diff == 0).sum()),
                      int((diff < 0).sum()), exact)


def baselines_of(row, rows: list) -> list:
    """The rows `row` is tested against: BM25, then the plain encoder, then its own system at k=0."""
    found = []
    for system in BASELINE_SYSTEMS[:BASELINE_SYSTEMS.index(row.system) if row.system in BASELINE_SYSTEMS else None]:
        found += [r for r in rows if r.system == system and r.k is None]
    if row.k:  # k=0 is the bare query; None (BM25, the encoder) has no thinking to leave out
        found += [r for r in rows if r.system == row.system and r.k == 0]
    return found


def compare_rows(rows: list, seed: int = 0, resamples: int = RESAMPLES) -> None:
    """Set each row's `significance`: one record per baseline row (see `baselines_of`), on per-query nDCG@10."""
    for row in rows:
        row.significance = []
        for base in baselines_of(row, rows):
            queries = sorted(base.per_query)
            if sorted(row.per_query) != queries:
                raise ValueError(f"{row.system} k={row.k} and {base.system} k={base.k} were scored on other queries")
            test = paired_randomization_test([row.per_query[q][METRIC] for q in queries],
                                             [base.per_query[q][METRIC] for q in queries], resamples, seed)
            row.significance.append({"baseline": {"system": base.system, "k": base.k}, "metric": METRIC,
                                     "delta": test.delta, "p_value": test.p_value, "wins": test.wins,
                                     "ties": test.ties, "losses": test.losses})


def describe(seed: int, resamples: int = RESAMPLES) -> dict:
    """How the p-values were computed: recorded in the results JSON's meta."""
    return {"test": "paired randomization (sign flip), two-sided", "metric": METRIC, "resamples": resamples,
            "seed": seed, "exact_when_queries_differing_at_most": int(np.log2(resamples)), "correction": None}


def cell(significance: list[dict] | None) -> str:
    """The printed table's cell: one line per baseline, e.g. "bm25 +0.0312 p=0.002 **"."""
    lines = []
    for s in significance or []:
        base = s["baseline"]
        label = base["system"] if base["k"] is None else f"k={base['k']}"
        p = s["p_value"]
        stars = "**" if p < 0.01 else "*" if p < 0.05 else ""
        lines.append(f"{label} {s['delta']:+.4f} p={'<0.001' if p < 0.001 else f'{p:.3f}'} {stars}".rstrip())
    return "\n".join(lines) or "-"
