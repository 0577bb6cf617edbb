"""Markdown table from one or more `o1-retriever eval` results JSONs (the README and model card tables).

    python -m o1_retriever.evaluation.table benchmarks/default_scifact.json benchmarks/default_nfcorpus.json

Rows keep the order of the files and of the rows in each file; a subsampled run is marked, so a
figure on part of a dataset is never mistaken for a full-split one.
"""
from __future__ import annotations

import sys

from . import report
from .report import read_results, results_files, row_cells

COLUMNS = tuple(c for c in report.COLUMNS if c not in ("MAP", "vs baseline"))  # the README tables leave these out


def _dataset_label(meta: dict) -> str:
    ds = meta["dataset"]
    label = f"{ds['name']} {ds['split']}"
    if meta.get("subsampled"):
        label += f" (subsampled: {ds['queries']} q, {ds['documents']} docs)"
    return label


def markdown_table(paths) -> str:
    """One table over every row of every results JSON in `paths`."""
    lines = ["| dataset | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for path in results_files(paths):  # a glob of runs/*.json also matches the per-query files
        meta, rows = read_results(path)
        label = _dataset_label(meta)
        for r in rows:
            cells = row_cells(r)
            lines.append("| " + " | ".join([label] + [cells[c] for c in COLUMNS]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m o1_retriever.evaluation.table RESULTS.json [RESULTS.json ...]", file=sys.stderr)
        return 2
    try:
        print(markdown_table(args))
    except ValueError as e:  # a file that is not results: said, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
