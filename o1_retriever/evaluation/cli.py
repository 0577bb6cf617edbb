"""`o1-retriever eval`: evaluate on a BEIR split, print a table, write JSON (+ a PNG for a k sweep).

    o1-retriever eval --dataset ../shared/data/scifact --split test --baseline bm25 --k 0,3 \
        --output benchmarks/scifact.json
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from ..cli_args import dtype_arg, hybrid_weight
from ..display import bars_shown
from ..fusion import DEFAULT_DENSE_WEIGHT
from ..settings import CLI_SETTINGS, add_setting_flags, overrides_of
from ..validation import int_list_arg, positive_int_arg


def parse_k_list(text: str) -> list[int]:
    """'0,1,3' -> [0, 1, 3]; a clear error for anything else."""
    values = int_list_arg(text, minimum=0, flag="--k", example="0,1,3")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"--k lists a value twice: {text!r}")
    return values


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate retrieval on a BEIR dataset (nDCG@10, Recall@100, MRR@10, MAP)",
                              description="Evaluate the O1 model (k sweep), BM25, a plain encoder and the composite "
                                          "model on one BEIR split; prints a table with each row's paired test "
                                          "against the baseline rows (and, with --output, writes JSON, each query's "
                                          "scores and a PNG).")
    p.add_argument("--dataset", required=True, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    p.add_argument("--split", default="test", help="qrels split (default: test)")
    p.add_argument("--model", default=None, help="O1 model dir, hub id or .gguf (default: the bundled model)")
    p.add_argument("--no-model", action="store_true", help="skip the O1 model (evaluate baselines/composite only)")
    p.add_argument("--k", type=parse_k_list, default=[0, 3], help="thoughts per query, a list for a sweep (default 0,3)")
    p.add_argument("--baseline", action="append", choices=["bm25"], default=[], help="add a BM25 row")
    p.add_argument("--hybrid", type=hybrid_weight, nargs="?", const=DEFAULT_DENSE_WEIGHT, metavar="W",
                   help="also fuse each dense row (model, encoder, composite) with BM25 (z-scored scores); W is the dense share "
                        f"(default {DEFAULT_DENSE_WEIGHT})")
    p.add_argument("--baseline-encoder", metavar="DIR", help="add a plain sentence-transformers encoder row")
    p.add_argument("--composite", action="store_true", help="add the composite model (thinker LM + ST encoder)")
    p.add_argument("--composite-thinker", metavar="DIR", help="composite thinker (default SmolLM2-135M-Instruct)")
    p.add_argument("--composite-encoder", metavar="DIR", help="composite encoder (default all-MiniLM-L6-v2)")
    p.add_argument("--max-docs", type=positive_int_arg,
                   help="subsample the corpus to N docs, keeping every doc judged for any query of the split (even "
                        "with --max-queries): the floor of N")
    p.add_argument("--max-queries", type=positive_int_arg, help="evaluate a seeded sample of N judged queries")
    p.add_argument("--index", choices=["exact", "chroma"], default="exact",
                   help="exact matrix-product search (default) or the Chroma store end to end")
    p.add_argument("--output", metavar="JSON", help="write results here, and beside it NAME.per_query.json (each "
                                                    "query's scores) and, for a k sweep, NAME.png")
    p.add_argument("--batch-size", type=positive_int_arg, default=32, help="batch size for thinking and embedding")
    add_setting_flags(p)  # the model's and the composite's inference settings
    p.add_argument("--seed", type=int, default=0,
                   help="seed for sampling thoughts and for the --max-docs and --max-queries samples (another seed "
                        "also draws another sample)")
    p.add_argument("--ignore-identical-ids", action="store_true",
                   help="drop a hit whose id equals the query id (BEIR's rule for ArguAna/Quora only)")
    p.add_argument("--thought-cache", action="store_true",
                   help="reuse the persistent thought cache (faster reruns; latency then excludes thinking)")
    p.add_argument("--no-embedding-cache", action="store_true", help="re-embed the corpus instead of using the cache")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", type=dtype_arg, default="auto",
                   help="model dtype: auto, bf16, fp16 or fp32 (default auto: bf16 where fast)")
    from ..distributed.cli import add_ray_arguments
    add_ray_arguments(p, "eval")
    p.set_defaults(func=run)


def config_from_args(args):
    from ..distributed.cli import eval_options
    from .runner import EvalConfig
    same = ("dataset", "split", "model", "k", "hybrid", "baseline_encoder", "composite", "composite_thinker",
            "composite_encoder", "max_docs", "max_queries", "index", "batch_size", "seed", "ignore_identical_ids",
            "thought_cache", "device", "dtype")  # flags named as the fields they set
    return EvalConfig(**{name: getattr(args, name) for name in same}, run_model=not args.no_model,
                      baselines=list(dict.fromkeys(args.baseline)), embedding_cache=not args.no_embedding_cache,
                      ray=eval_options(args) or None, **overrides_of(args, CLI_SETTINGS),
                      # a log file would collect every redraw of every bar: bars only on a terminal
                      progress=None if bars_shown() else False)


def run(args) -> int:
    from pathlib import Path

    from .plot import _pyplot, plot_k_sweep, sweep_title
    from .report import beside, build_meta, check_output, partial_path, per_query_path, print_table, write_json
    from .runner import run_evaluation
    config = config_from_args(args)
    output = None
    if args.output:
        output = check_output(args.output)  # "~" expanded: --output=~/r.json is not expanded by the shell
        check_output(per_query_path(output), "--output's per-query scores")
        if output.suffix.lower() == ".png":  # the sweep's PNG would overwrite the JSON just written there
            raise ValueError(f"--output {output} names the results JSON, and a k sweep's PNG goes beside it with "
                             f"the suffix .png: name the JSON, e.g. {output.with_suffix('.json')}")
        if len(config.k) > 1 and (config.run_model or config.composite):
            _pyplot()  # the sweep's PNG: a missing matplotlib is said now, not after the evaluation
            check_output(beside(output, ".png"), "--output's PNG")
    invoked = sys.argv and Path(sys.argv[0]).name.startswith("o1-retriever")  # not when called in-process
    command = ["o1-retriever", *sys.argv[1:]] if invoked else None
    try:
        with sigterm_raises():
            outcome = run_evaluation(config, log=lambda msg: print(msg, file=sys.stderr))
    except BaseException as e:
        try:
            _keep_partial(getattr(e, "partial_outcome", None), e, config, output, command)
        except Exception as lost:  # the evaluation's own error is the one to report
            print(f"could not keep the finished rows: {type(lost).__name__}: {lost}", file=sys.stderr)
        raise
    if args.output:  # before the table: a reader gone (`| head`) or an unprintable name must not lose the results
        for earlier in (partial_path(output), per_query_path(partial_path(output))):
            earlier.unlink(missing_ok=True)  # what a failed earlier run kept: this run has every row
        path = write_json(output, build_meta(config, outcome, command), outcome)
    print_table(outcome)
    if args.output:
        print(f"wrote {path} (each query's scores: {per_query_path(path).name})")
        rows = [r.as_dict() for r in outcome.rows]
        png = beside(path, ".png")
        if len(config.k) > 1 and any(r["k"] is not None for r in rows):
            title = sweep_title(outcome.dataset.name, outcome.dataset.split, outcome.dataset.subsampled)
            print(f"wrote {plot_k_sweep(rows, png, title)}")
        elif png.exists():  # it would pass for this run's plot
            print(f"note: {png} is an earlier run's k sweep, not this run's (one k here: no plot drawn)",
                  file=sys.stderr)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a batch job's time limit) as an exception: the finished rows are kept as on Ctrl-C."""


@contextlib.contextmanager
def sigterm_raises():
    """SIGTERM raises `Terminated` inside the block; its default action ends the process at once, and with it the
    finished rows. Left alone off the main thread (no handler can be set there) or where a handler is already set."""
    def raise_terminated(signum, frame):
        raise Terminated("terminated (SIGTERM)")

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _keep_partial(outcome, error: BaseException, config, output, command) -> None:
    """The rows finished before `error` (a model that fails to load, CUDA out of memory at the last k, Ctrl-C):
    shown, and with --output written to `<name>.partial.json`, so that hours of evaluation are not lost with it."""
    if outcome is None:
        return
    from .report import build_meta, partial_path, print_table, write_json
    if output is not None:  # before the table, which a reader gone (`| head`) would stop
        meta = build_meta(config, outcome, command) | {"incomplete": f"{type(error).__name__}: {error}"}
        try:
            path = write_json(partial_path(output), meta, outcome)
            print(f"the run stopped; its {len(outcome.rows)} finished rows are in {path}", file=sys.stderr)
        except OSError as e:  # the evaluation's own error is the one to report
            print(f"could not keep the {len(outcome.rows)} finished rows: {e}", file=sys.stderr)
    print_table(outcome)
