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
        label = f"{system}: {model}"
        ax_q.plot(ks, [r["ndcg@10"] for r in items], marker="o", label=label)
        ax_t.plot(ks, [r["ms_per_query"] for r in items], marker="o", label=label)
    for r in rows:
        if r.get("k") is None:
            label = r["system"] if not r.get("model") else f"{r['system']}: {r['model']}"
            ax_q.axhline(r["ndcg@10"], linestyle="--", linewidth=1, color="gray" if r["system"] == "bm25" else None,
                         label=label)
            ax_t.axhline(r["ms_per_query"], linestyle="--", linewidth=1,
                         color="gray" if r["system"] == "bm25" else None, label=label)
    all_k = sorted({r["k"] for r in rows if r.get("k") is not None})
    for ax, ylabel in ((ax_q, "nDCG@10"), (ax_t, "ms per query (think + embed + search)")):
        ax.set_xlabel("k (thoughts per query)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(all_k)
        ax.grid(alpha=0.3)
    ax_t.set_yscale("symlog", linthresh=1.0)
    ax_q.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
