"""Choose a model's inference settings (temperature, top_p, aggregation, query_weight, token windows) from
`o1-retriever eval` JSONs run on held-out dev data, and write them into its `o1_generation.json`:

    python -m o1_retriever.evaluation.choose --k 3 --into MODEL_DIR/o1_generation.json runs/x/dev/*.json

Each JSON is one (dataset, setting) run; a setting's score is its metric at k averaged over the datasets.
Only settings run on every dataset compete; a tie keeps the setting listed first. `--system o1+bm25` judges the
hybrid rows of `eval --hybrid W` runs instead, and the dense share W joins the setting (a search option: it is
not written into a model).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text_atomically
from ..validation import read_json_object
from .report import read_results, results_files

SETTING_KEYS = ("temperature", "top_p", "aggregation", "query_weight", "query_max_length", "document_max_length")
REQUIRED_KEYS = SETTING_KEYS[:3]  # older runs lack the rest: None, the model's default


def _read(path: Path, k: int, metric: str, system: str = "o1") -> tuple[str, tuple, float, float | None]:
    """(dataset label, setting, metric at k, metric at k=0 if the run has it), from one eval JSON."""
    meta, results = read_results(path)
    generation = meta.get("generation") or {}
    if not all(key in generation for key in REQUIRED_KEYS):
        raise ValueError(f"{path}: meta.generation lacks {list(REQUIRED_KEYS)} (run by an older o1-retriever eval?)")
    by_k = {r.get("k"): r for r in results if r.get("system") == system}
    if k not in by_k or metric not in by_k[k]:
        raise ValueError(f"{path}: needs one {system} row at k={k} with {metric!r}")
    bare = float(by_k[0][metric]) if 0 in by_k else None
    setting = tuple(generation.get(key) for key in SETTING_KEYS)
    if system.endswith("+bm25"):  # the dense share joins the setting; a fused k=0 row depends on it too,
        # so the bar fusion must beat is BM25 alone
        setting += ((meta.get("hybrid") or {}).get("dense_weight"),)
        lexical = [r for r in results if r.get("system") == "bm25"]
        bare = float(lexical[0][metric]) if lexical else None
    dataset = f"{meta['dataset']['name']}/{meta['dataset']['split']}"
    return dataset, setting, float(by_k[k][metric]), bare


@dataclass
class Choice:
    best: dict                          # the winning setting
    table: list[tuple[dict, float]]     # every complete setting with its mean score, in first-seen order
    no_thinking: float | None           # the bar to beat, if the runs have it: the mean k=0 score (fused: BM25 alone)


def choose(files, k: int = 3, metric: str = "ndcg@10", system: str = "o1") -> Choice:
    keys = SETTING_KEYS + (("dense_weight",) if system.endswith("+bm25") else ())
    scores: dict[tuple, dict[str, float]] = {}
    bare: dict[str, float] = {}
    for path in results_files(files):  # a glob of runs/*.json also matches the per-query files
        dataset, setting, value, bare_value = _read(path, k, metric, system)
        if dataset in scores.setdefault(setting, {}):
            raise ValueError(f"{path}: a second run of {dict(zip(keys, setting))} on {dataset}")
        scores[setting][dataset] = value
        if bare_value is not None:
            bare[dataset] = bare_value
    datasets = {d for v in scores.values() for d in v}
    complete = [(dict(zip(keys, s)), sum(v.values()) / len(v)) for s, v in scores.items()
                if set(v) == datasets]
    if not complete:
        raise ValueError(f"no setting was run on every dataset ({sorted(datasets)})")
    best = max(complete, key=lambda item: item[1])  # max keeps the first of equals
    return Choice(best[0], complete, sum(bare.values()) / len(bare) if bare else None)


def plot_choice(table, best: dict, path, k: int, metric: str, baseline: float | None = None,
                baseline_label: str = "k=0 (no thinking)") -> Path:
    """Bar chart of every setting's score, the chosen one highlighted, k=0 as a reference line."""
    from .plot import _pyplot, save_figure
    plt = _pyplot()
    labels = [f"T={s['temperature']}\ntop_p={s['top_p']}\n{s['aggregation']}"
              + ("" if s.get("query_weight") is None else f"\nquery {s['query_weight']}")
              + ("" if s.get("dense_weight") is None else f"\ndense {s['dense_weight']}")
              + ("" if s.get("document_max_length") is None else f"\ndoc {s['document_max_length']} tok")
              for s, _ in table]
    scores = [v for _, v in table]
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(table)), 4))
    ax.bar(range(len(table)), scores, color=["tab:orange" if s == best else "tab:blue" for s, _ in table])
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="gray", label=f"{baseline_label} {baseline:.4f}")
        ax.legend(loc="upper left", fontsize=8)
    for i, v in enumerate(scores):
        ax.text(i, v, f"{v:.4f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(table)), labels, fontsize=8)
    ax.set_ylabel(f"{metric} at k={k} (dev)")
    ax.set_ylim(min(scores + [baseline or min(scores)]) * 0.95, max(scores + [baseline or 0]) * 1.03)
    ax.set_title("inference settings on held-out data (orange: chosen)")
    fig.tight_layout()
    path = save_figure(fig, Path(path).expanduser())  # all or nothing: a killed run leaves the last good chart
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m o1_retriever.evaluation.choose", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="eval JSONs on dev data, one per (dataset, setting)")
    p.add_argument("--k", type=int, default=3, help="thought count whose score decides (default 3)")
    p.add_argument("--metric", default="ndcg@10", help="result key to maximise (default ndcg@10)")
    p.add_argument("--system", default="o1", help="which rows judge: o1 (default) or o1+bm25 (eval --hybrid runs)")
    p.add_argument("--into", help="o1_generation.json to update with the winner (other keys are kept)")
    p.add_argument("--plot", metavar="PNG", help="also draw the scores as a bar chart, k=0 as a reference line")
    args = p.parse_args(argv)
    if args.into and args.system != "o1":
        p.error(f"--into writes a model's settings; the {args.system} rows' dense share is a search option, not one")
    result = choose(args.files, args.k, args.metric, args.system)
    best, table = result.best, result.table
    if args.plot:
        bar = "BM25 alone" if args.system.endswith("+bm25") else "k=0 (no thinking)"
        print(f"wrote {plot_choice(table, best, args.plot, args.k, args.metric, result.no_thinking, bar)}")
    for setting, score in table:
        print(f"{args.metric}@k={args.k} {score:.4f}  {setting}" + ("  <- chosen" if setting == best else ""))
    if args.into:
        target = Path(args.into).expanduser()  # as read_json_object reads it
        current = read_json_object(target) or {}
        merged = {key: value for key, value in (current | best).items() if value is not None}  # None: the default
        write_text_atomically(target, json.dumps(merged) + "\n")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
