"""Apply benchmarks/composite_default/RULE.md to the dev runs of scripts/eval_composite_dev.sh.

    python scripts/composite_rule.py [DEV_DIR] [--output decision.json]

Reads DEV_DIR/<candidate>_<set>_s<seed>.json, prints one table per candidate (k=0, the three k=3 seeds, MiniLM,
MiniLM+BM25, the candidate+BM25) with each clause's verdict, and the decision.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

SETS = ("scifact_dev", "nfcorpus_dev", "cisi")
NAME = re.compile(r"^(?P<cand>.+)_(?P<set>scifact_dev|nfcorpus_dev|cisi)_s(?P<seed>\d+)\.json$")


def _ndcg(rows, system, k=None):
    found = [r["ndcg@10"] for r in rows if r["system"] == system and (k is None or r["k"] == k)]
    return found[0] if found else None


def judge(runs: dict) -> dict:
    """runs[set][seed] = result rows of one candidate -> per-set figures and clause verdicts."""
    out = {}
    for name in SETS:
        seeds = runs.get(name, {})
        if 0 not in seeds or not {1, 2} <= set(seeds):
            out[name] = {"complete": False}
            continue
        first = seeds[0]
        k3 = [_ndcg(seeds[s], "o1", 3) for s in (0, 1, 2)]
        fig = {"complete": True, "k0": _ndcg(first, "o1", 0), "k3_seeds": k3, "k3_mean": statistics.mean(k3),
               "spread": max(k3) - min(k3), "minilm": _ndcg(first, "encoder"),
               "minilm_bm25": _ndcg(first, "encoder+bm25"), "bm25": _ndcg(first, "bm25"),
               "fused_k3": _ndcg(first, "o1+bm25", 3)}
        fig["clause1"] = fig["k0"] >= fig["minilm"] and fig["k3_mean"] >= fig["minilm"]
        fig["clause2"] = fig["k3_mean"] - fig["k0"] > fig["spread"]
        fig["clause3"] = fig["fused_k3"] >= fig["minilm_bm25"]
        out[name] = fig
    return out


def decide(dev_dir: Path) -> dict:
    found = defaultdict(lambda: defaultdict(dict))
    for path in sorted(dev_dir.glob("*.json")):
        m = NAME.match(path.name)
        if m:
            found[m["cand"]][m["set"]][int(m["seed"])] = json.loads(path.read_text())["results"]
    verdicts = {cand: judge(runs) for cand, runs in found.items()}
    complete = {c: v for c, v in verdicts.items() if all(v[s]["complete"] for s in SETS)}
    failures = {c: sum(not v[s][f"clause{i}"] for s in SETS for i in (1, 2, 3)) for c, v in complete.items()}
    mean_k3 = {c: statistics.mean(v[s]["k3_mean"] for s in SETS) for c, v in complete.items()}
    passing = [c for c in complete if failures[c] == 0]
    fewest = min(failures.values(), default=None)
    pool = passing or [c for c in complete if failures[c] == fewest]
    choice = max(pool, key=lambda c: mean_k3[c]) if pool else None
    return {"candidates": verdicts, "failures": failures, "mean_k3": mean_k3, "passing": passing, "choice": choice,
            "shipped": choice, "incomplete": sorted(set(verdicts) - set(complete))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dev_dir", nargs="?", default="benchmarks/composite_default/dev")
    p.add_argument("--output", help="write the decision as JSON")
    args = p.parse_args(argv)
    result = decide(Path(args.dev_dir))
    for cand, sets in result["candidates"].items():
        print(f"\n{cand}")
        print(f"  {'set':13} {'k=0':>6} {'k=3 (s0/s1/s2)':>22} {'mean':>6} {'spread':>6} {'MiniLM':>6} "
              f"{'ML+BM25':>7} {'C+BM25':>6}  clauses")
        for name in SETS:
            f = sets[name]
            if not f["complete"]:
                print(f"  {name:13} (incomplete)")
                continue
            seeds = "/".join(f"{x:.3f}" for x in f["k3_seeds"])
            verdict = " ".join("ok" if f[f"clause{i}"] else "FAIL" for i in (1, 2, 3))
            print(f"  {name:13} {f['k0']:6.3f} {seeds:>22} {f['k3_mean']:6.3f} {f['spread']:6.3f} {f['minilm']:6.3f} "
                  f"{f['minilm_bm25']:7.3f} {f['fused_k3']:6.3f}  {verdict}")
    print(f"\npassing: {result['passing'] or 'none'}; failures: {result['failures']}; "
          f"choice: {result['choice']}; incomplete: {result['incomplete'] or 'none'}")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
