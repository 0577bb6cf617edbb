"""The evaluation record: JSON (stable shape other tools read) and a rich table for people.

JSON shape: {"meta": {...}, "results": [{"system", "model", "k", "ndcg@10", "recall@100", "mrr@10",
"map", "queries", "ms_per_query", ..., "significance": [...]}, ...]}. `meta` says exactly what produced the numbers.
Each query's scores go to a sidecar beside it, `<name>.per_query.json` (`meta.per_query` names it): thousands of
numbers per row would bury the table's few, and tools that read the results never need them.
"""
from __future__ import annotations

import functools
import json
import os
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..atomic import write_text_atomically
from ..bm25 import BM25Config
from ..machine import describe as machine
from ..validation import check_writable_from
from .metrics import TREC_MEASURES
from .runner import TOP_K, EvalConfig, EvalOutcome
from .significance import RESAMPLES, cell as significance_cell, describe as describe_significance

COLUMNS = ("system", "model", "k", "nDCG@10", "R@100", "MRR@10", "MAP", "ms/query", "think tok/q", "vs baseline")
_PACKAGES = ("o1-retriever", "torch", "transformers", "sentence-transformers", "bm25s", "PyStemmer",
             "pytrec-eval-terrier", "chromadb", "numpy")


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def build_meta(config: EvalConfig, outcome: EvalOutcome, argv: list[str] | None = None) -> dict:
    ds = outcome.dataset
    o1 = next((s for s in outcome.systems if s.system == "o1"), None)
    generation = next((s.generation for s in outcome.systems if s.generation), None)
    return {
        "tool": "o1-retriever eval",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": argv,  # None when called from Python: `config` below says it all
        "dataset": {"name": ds.name, "path": str(ds.path), "split": ds.split, "hash": ds.digest,
                    "documents": len(ds.corpus), "queries": len(ds.queries), "subsample": ds.subsample,
                    "query_subsample": ds.query_subsample},
        "subsampled": ds.subsampled,
        "model": o1.model if o1 else None,
        "fingerprint": o1.fingerprint if o1 else None,
        "k": list(config.k),
        "generation": generation,
        "seed": config.seed,
        "index": config.index,
        "top_k": TOP_K,
        "ignore_identical_ids": config.ignore_identical_ids,
        "thought_cache": config.thought_cache,
        "bm25": BM25Config().as_dict() if "bm25" in config.baselines or config.hybrid is not None else None,
        "hybrid": None if config.hybrid is None else {"dense_weight": config.hybrid, "fusion": "zscore",
                                                      "pool": TOP_K},
        "significance": describe_significance(config.seed),
        "systems": [asdict(s) for s in outcome.systems],
        "config": asdict(config),
        "versions": versions(),
        "machine": machine(),
    }


def check_output(path, flag: str = "--output") -> Path:
    """`path` as a file this process can write, checked before any work: an existing folder there, a file where a
    folder must be, or a folder it may not write in would otherwise fail only after the whole run."""
    raw = os.fspath(path)
    path = Path(path).expanduser()
    if path.is_dir() or raw.endswith(("/", os.sep)):  # "out/": a folder meant, and Path would drop the slash
        raise ValueError(f"{flag} {raw} {'is' if path.is_dir() else 'names'} a folder: name a file, e.g. "
                         f"{path / 'results.json'}")
    check_writable_from(path.parent, path, flag)
    return path


def beside(path, suffix: str) -> Path:
    """A file named after the results JSON `path`: `r.json` -> `r<suffix>`. A name not ending in .json is kept whole
    (`runs/t0.7` -> `runs/t0.7<suffix>`, not `runs/t0<suffix>`, which the run written to `runs/t0.5` would take too)."""
    path = Path(path)
    return path.with_suffix(suffix) if path.suffix.lower() == ".json" else path.with_name(path.name + suffix)


def per_query_path(path) -> Path:
    """Where the per-query scores of the results JSON at `path` go: `r.json` -> `r.per_query.json`."""
    return beside(path, ".per_query.json")


def partial_path(path) -> Path:
    """Where a run that stopped early keeps its finished rows instead of `path`: `r.json` -> `r.partial.json`."""
    return beside(path, ".partial.json")


def write_json(path, meta: dict, outcome: EvalOutcome) -> Path:
    """The results JSON at `path`, and first, when the rows carry them, their per-query scores beside it."""
    path = Path(path).expanduser()  # as check_output read it: the shell leaves --output=~/r.json
    path.parent.mkdir(parents=True, exist_ok=True)
    scored = all(r.per_query is not None for r in outcome.rows)
    if scored:
        write_text_atomically(per_query_path(path), per_query_text(path.name, outcome, meta.get("created")))
    payload = {"meta": meta | {"per_query": per_query_path(path).name if scored else None},
               "results": [r.as_dict() for r in outcome.rows]}
    return write_text_atomically(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def per_query_text(results_name: str, outcome: EvalOutcome, created: str | None = None) -> str:
    """{"results", "created", "dataset", "queries", "rows": [{"system", "model", "k", "ndcg@10": {query id: score},
    ...}]}, one line per row and metric: pandas reads a row's metric as a Series, a paired test pairs two by query id.
    "created" is the results JSON's own: a pair of files from two runs can be told apart."""
    ds = outcome.dataset
    dump = functools.partial(json.dumps, ensure_ascii=False)
    head = {"results": results_name, "created": created,
            "dataset": {"name": ds.name, "split": ds.split, "hash": ds.digest},
            "queries": len(outcome.rows[0].per_query) if outcome.rows else 0}
    rows = []
    for r in outcome.rows:
        lines = [f'"{key}": {dump({q: scores[key] for q, scores in r.per_query.items()})}' for key in TREC_MEASURES]
        rows.append(f'  {{"system": {dump(r.system)}, "model": {dump(r.model)}, "k": {dump(r.k)},\n   '
                    + ",\n   ".join(lines) + "}")
    return dump(head)[:-1] + ',\n "rows": [\n' + ",\n".join(rows) + "\n ]}\n"


def results_files(paths) -> list[Path]:
    """`paths` without the per-query files that a glob such as `runs/*.json` matches beside each results JSON."""
    return [Path(p) for p in paths if not Path(p).name.endswith(".per_query.json")]


def read_results(path) -> tuple[dict, list[dict]]:
    """(meta, result rows) of a JSON that `write_json` wrote; anything else raises ValueError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data["meta"], data["results"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not an `o1-retriever eval` results JSON ({e})") from e


def row_cells(r: dict) -> dict[str, str]:
    """A result row (`ResultRow.as_dict()`, as in the JSON) as display strings, one per column name."""
    tokens = "-" if r.get("thinking_tokens_per_query") is None else f"{r['thinking_tokens_per_query']:.1f}"
    if r.get("thoughts_from_cache"):  # latency without (all of) the thinking: say so wherever it is shown
        tokens += f" ({r['thoughts_from_cache']:.0%} cached)"
    return {"system": r["system"], "model": r.get("model") or "-", "k": "-" if r.get("k") is None else str(r["k"]),
            "nDCG@10": f"{r['ndcg@10']:.4f}", "R@100": f"{r['recall@100']:.4f}", "MRR@10": f"{r['mrr@10']:.4f}",
            "MAP": f"{r['map']:.4f}", "ms/query": f"{r['ms_per_query']:.1f}", "think tok/q": tokens,
            "vs baseline": significance_cell(r.get("significance"))}


def print_table(outcome: EvalOutcome, console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    ds = outcome.dataset
    title = f"{ds.name} / {ds.split}: {len(ds.queries)} queries, {len(ds.corpus)} docs"
    averaged = outcome.rows[0].queries if outcome.rows else len(ds.queries)
    if averaged != len(ds.queries):  # the others are judged not relevant only: the means leave them out
        title += f" (figures over the {averaged} with a relevant document)"
    if ds.docs_sampled:
        title += f" (docs SUBSAMPLED from {ds.subsample['docs_total']})"
    if ds.queries_sampled:
        title += f" (queries SUBSAMPLED from {ds.query_subsample['queries_total']})"
    tested = any(r.significance for r in outcome.rows)  # a lone row has no baseline: no column, no caption
    columns = COLUMNS if tested else COLUMNS[:-1]
    table = Table(title=title, caption=f"vs baseline: the nDCG@10 difference and the p of a two-sided paired "
                                       f"randomization test on it ({RESAMPLES:,} resamples; exact when few queries "
                                       "differ); * p < 0.05, ** p < 0.01, uncorrected" if tested else None)
    for name in columns:
        table.add_column(name, justify="left" if name in ("system", "model", "vs baseline") else "right")
    for r in outcome.rows:
        cells = row_cells(r.as_dict())
        table.add_row(*(cells[c] for c in columns))
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file: rich would squeeze the table into 80 columns
            console = Console(width=160)
    console.print(table)
