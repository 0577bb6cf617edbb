"""PNG of a k sweep: nDCG@10 and query latency against k, one line per thinking system.

Systems without k (BM25, a plain encoder) appear as dashed horizontal reference lines.
"""
from __future__ import annotations

from pathlib import Path


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install matplotlib (or pip install 'o1-retriever[eval]')") from e
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt
    return plt


def _literal(text: str) -> str:
    """`text` drawn as written: matplotlib reads a pair of "$" as math, and a folder named "a$_x$" failed the plot."""
    return text.replace("$", r"\$")


def sweep_title(name: str, split: str, subsampled: bool) -> str:
    """The PNG's title: dataset/split, marked when only part of it was evaluated."""
    return f"{name}/{split}" + (" (subsampled)" if subsampled else "")


def plot_k_sweep(rows: list[dict], path, title: str = "") -> Path:
    """`rows` are JSON result dicts (see report.py). Returns the PNG path."""
    swept = {}
    for r in rows:
        if r.get("k") is not None:
            swept.setdefault((r["system"], r["model"]), []).append(r)
    if not swept:
        raise ValueError("no rows with a k value: nothing to plot against k")
    plt = _pyplot()
    fig, (ax_q, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    for (system, model), items in swept.items():
        items = sorted(items, key=lambda r: r["k"])
        ks = [r["k"] for r in items]
        label = _literal(f"{system}: {model}")
        ax_q.plot(ks, [r["ndcg@10"] for r in items], marker="o", label=label)
        ax_t.plot(ks, [r["ms_per_query"] for r in items], marker="o", label=label)
    # Rows without k are reference lines: BM25 gray, each other one the next colour after the swept lines
    # (axhline does not advance the colour cycle on its own); fused rows dotted.
    references = [r for r in rows if r.get("k") is None]
    for i, r in enumerate(references):
        label = _literal(r["system"] if not r.get("model") else f"{r['system']}: {r['model']}")
        style = {"linestyle": ":" if r["system"].endswith("+bm25") else "--", "linewidth": 1, "label": label,
                 "color": "gray" if r["system"] == "bm25" else f"C{(len(swept) + i) % 10}"}
        ax_q.axhline(r["ndcg@10"], **style)
        ax_t.axhline(r["ms_per_query"], **style)
    all_k = sorted({r["k"] for r in rows if r.get("k") is not None})
    for ax, ylabel in ((ax_q, "nDCG@10"), (ax_t, "ms per query (think + embed + search)")):
        ax.set_xlabel("k (thoughts per query)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(all_k)
        ax.grid(alpha=0.3)
    if all(r["ms_per_query"] > 0 for r in rows):
        ax_t.set_yscale("log")  # BM25 and thinking latencies differ by orders of magnitude
    ax_q.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(_literal(title))
    fig.tight_layout()
    path = Path(path)
    save_figure(fig, path)
    plt.close(fig)
    return path


def save_figure(fig, path) -> Path:
    """`fig.savefig(path)`, all or nothing: a reader, or a run killed mid-write, never finds half a PNG. The format
    is the file's suffix (png when it has none)."""
    from ..atomic import atomic_path
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        fig.savefig(f, format=path.suffix[1:].lower() or "png", dpi=120)
    return path


def merged_rows(paths) -> tuple[list[dict], str]:
    """Rows of one or more results JSONs of the same dataset and split (a k sweep run in parts, say k=0,3 then
    k=1,5 against the same cached corpus vectors), and the plot title. Mixing datasets, or two rows for the same
    system and k, raises ValueError: one curve must come from one dataset, one point per k."""
    from .report import read_results, results_files
    rows, seen, label = [], {}, None
    for path in results_files(paths):  # a glob of runs/*.json also matches the per-query files
        meta, results = read_results(path)
        this = sweep_title(meta["dataset"]["name"], meta["dataset"]["split"], bool(meta.get("subsampled")))
        if label is not None and this != label:
            raise ValueError(f"{path} is {this}, the first file is {label}: plot one dataset and split at a time")
        label = this
        for r in results:
            key = (r["system"], r.get("model"), r.get("k"))
            if key in seen:
                raise ValueError(f"{path} repeats {key} from {seen[key]}: each system and k may appear once")
            seen[key] = path
            rows.append(r)
    return rows, label


def main(argv=None) -> int:
    """Redraw the PNG of a results JSON, or of several runs of one split merged (beside the first):
    python -m o1_retriever.evaluation.plot results.json [more_results.json ...]"""
    import sys
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m o1_retriever.evaluation.plot RESULTS.json [RESULTS.json ...]", file=sys.stderr)
        return 2
    try:
        rows, title = merged_rows(args)
        from .report import beside
        print(plot_k_sweep(rows, beside(args[0], ".png"), title))
    except (ValueError, ImportError) as e:  # a file that is not results, mixed runs, no matplotlib: said, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
