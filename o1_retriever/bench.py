"""`o1-retriever bench`: throughput and memory of the engine, all measured in one run on one machine.

Not a test: figures depend on the machine. Results go to JSON (and a rich table) for notes and READMEs.
"""
from __future__ import annotations

import json
import os

import torch

from .atomic import atomic_path, write_text_atomically
# every measure stays importable from here, where it was first defined (the default adapter's README imports
# load_times from o1_retriever.bench)
from .bench_measures import (BENCH_QUERIES, _check_psutil, _child_json, _thinker_memory, _thinker_source,  # noqa: F401
                             bench_docs_text, bench_documents, bench_queries, bench_queries_text, load_and_memory_rows,
                             load_times, matmul_tflops)
from .machine import describe as describe_machine
from .speed import compare_paths, plot_paths
from .validation import MAX_K, check_k, check_positive_int, int_list_arg, positive_int_arg


def run_bench(args) -> int:
    from rich.console import Console

    from . import O1Embedder
    from .device import dtype_name, resolve_device, resolve_dtype
    from .evaluation.report import check_output
    console = Console()
    # before a minute of loading and timing (the parser checks these too; run_bench may be called without it)
    for name in ("batch_size", "queries", "one_by_one", "docs", "paths_repeats"):
        check_positive_int(getattr(args, name), name)
    for name in ("paths_queries", "max_new_tokens"):
        if getattr(args, name) is not None:
            check_positive_int(getattr(args, name), name)
    check_k(args.k)
    for k in args.paths_k:  # the reference path thinks: k=0 has nothing to compare
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"paths_k values must be ints from 1 to {MAX_K}, got {k!r}")
    for batch in args.paths_batch:
        check_positive_int(batch, "paths_batch")
    if not args.throughput_only and not args.paths_only:
        _check_psutil()  # the memory rows come last: a missing psutil is said now, not after the timing
    if args.output:
        check_output(args.output)
        from .evaluation.plot import _pyplot
        _pyplot()  # the _paths.png: a missing matplotlib is said now, not after minutes of timing
    if args.model is not None:  # a typo was said only after the matmul timing
        from .loading import _looks_like_path  # the loader's own rule for a path, not a hub id
        if _looks_like_path(args.model) and not os.path.exists(os.path.expanduser(args.model)):
            raise ValueError(f"--model {args.model!r} does not exist; give a local directory, a .gguf file or a hub id")
    device = resolve_device(args.device)
    queries = bench_queries_text(args.queries)
    docs = bench_docs_text(args.docs)
    peak = {"bf16": matmul_tflops(torch.bfloat16, device=device), "fp32": matmul_tflops(torch.float32, device=device)}
    console.print(f"matmul TFLOP/s on {device}: bf16 {peak['bf16']:.4g}, fp32 {peak['fp32']:.4g}")
    # By default the engine is timed in the dtype `dtype="auto"` picks here (bf16 on CUDA and AMX/AVX512-BF16
    # CPUs, else fp32): what users get; on a CPU that emulates bf16 the default model in bf16 would take hours.
    chosen = resolve_dtype(args.dtype, device)
    dtype = dtype_name(chosen)
    if dtype not in peak:  # fp16
        peak[dtype] = matmul_tflops(chosen, device=device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    result = {"meta": {"machine": describe_machine(), "device": str(device),
                       "gpu": gpu, "dtype": dtype, "load_and_memory_device": "cpu", "k": args.k,
                       "max_new_tokens": args.max_new_tokens, "queries": len(queries), "documents": len(docs),
                       "batch_size": args.batch_size, "model": args.model or "bundled default",
                       # every flag, so a figure can be reproduced from its JSON alone
                       "options": {k: v for k, v in vars(args).items() if k not in ("func", "command")}},
              "matmul_tflops": peak}
    # Fused thinking needs the official prompt: forced here so all query modes run the same prompt.
    length = {} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens}
    emb = O1Embedder.from_pretrained(args.model, device=device, dtype=dtype, prompt_style="official",
                                     thought_cache=False, **length)
    result["meta"]["max_new_tokens"] = emb.settings.max_new_tokens
    result["paths"] = _bench_paths(emb, args, peak[dtype], console)
    if args.paths_only:
        return _finish(result, args, console)
    console.print(f"timing the query modes on {len(queries)} queries, then {len(docs)} documents")  # no bars: timed
    result["queries"] = bench_queries(emb, queries, args.k, args.one_by_one, args.batch_size)
    result["encode_documents"] = {dtype: bench_documents(emb, docs, peak[dtype], args.batch_size)}
    del emb
    if dtype != "fp32":  # the full-precision baseline beside it
        emb32 = O1Embedder.from_pretrained(args.model, device=device, dtype="fp32", thought_cache=False)
        result["encode_documents"]["fp32"] = bench_documents(emb32, docs, peak["fp32"], args.batch_size)
        del emb32
    result["load_seconds"], result["thinker_memory_mb"] = {}, {}
    if not args.throughput_only:
        console.print("timing loads and measuring the thinker's memory in fresh processes")
        result["load_seconds"], result["thinker_memory_mb"] = load_and_memory_rows(args.model)
    return _finish(result, args, console)


def _bench_paths(emb, args, peak_tflops, console) -> list[dict]:
    """The reference path against ours for every (k, batch size) asked, on the same queries each time."""
    rows = []
    for k in args.paths_k:
        for batch in args.paths_batch:
            queries = bench_queries_text(args.paths_queries or batch)
            row = compare_paths(emb, queries, k, batch, peak_tflops, repeats=args.paths_repeats,
                                compiled=args.paths_compiled)
            console.print(f"k={k} batch {batch}: reference {row['reference']['ms_per_query']:.0f} ms/query, ours "
                          f"{row['ours']['ms_per_query']:.0f} ({row['speedup']:.2f}x; "
                          f"{row['ours']['fraction_of_bound']:.1%} of the compute bound)")
            rows.append(row)
    return rows


def _finish(result, args, console) -> int:
    from rich.table import Table
    table = Table(title=f"o1-retriever bench (k={args.k}, max_new_tokens={result['meta']['max_new_tokens']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for r in result.get("paths", []):
        table.add_row(f"ms/query reference / ours, k={r['k']} batch {r['batch_size']} (speedup)",
                      f"{r['reference']['ms_per_query']:.0f} / {r['ours']['ms_per_query']:.0f} ({r['speedup']:.2f}x)")
    for mode, r in result.get("queries", {}).items():
        table.add_row(f"queries/s {mode} (thought tokens/s)", f"{r['queries_per_s']:.2f} ({r['thought_tokens_per_s']:.0f})")
    for dt, r in result.get("encode_documents", {}).items():
        table.add_row(f"docs/s {dt}", f"{r['docs_per_s']:.1f}")
        table.add_row(f"tokens/s {dt} (fraction of {dt} matmul peak)", f"{r['tokens_per_s']:.0f} ({r['fraction_of_peak']:.1%})")
    for run, r in result.get("load_seconds", {}).items():
        if run == "error":
            table.add_row("load times", r)
            continue
        table.add_row(f"load {run.replace('_', ' ')}: import / from_pretrained s",
                      f"{r['import_s']:.2f} / {r['from_pretrained_s']:.2f}")
    for q, r in result.get("thinker_memory_mb", {}).items():
        shown = r if "error" in r else {k: None if v is None else round(v) for k, v in r.items()}  # None: no peak kept
        table.add_row(f"thinker memory {q}", json.dumps(shown))
    console.print(table)
    if args.output:
        output = os.path.expanduser(args.output)  # as check_output read it: the shell leaves --output=~/b.json
        write_text_atomically(output, json.dumps(result, indent=2))
        console.print(f"wrote {output}")
        if result.get("paths"):
            png = os.path.splitext(output)[0] + "_paths.png"
            meta = result["meta"]
            # written beside and renamed: a kill mid-write leaves the previous PNG whole (savefig writes a file
            # object as PNG, whatever the temporary's name)
            with atomic_path(png) as temporary, open(temporary, "wb") as f:
                plot_paths(result["paths"], f, f"{meta['model']} on {meta['gpu'] or meta['machine']['cpu']} "
                                               f"({meta['machine']['cpu_count']} cpus), {meta['dtype']}, "
                                               f"<= {meta['max_new_tokens']} tokens")
            console.print(f"wrote {png}")
    return 0


def _k_arg(text: str) -> int:
    """argparse `type=` for --k: one value in the range encode_queries takes (a negative one failed after loading)."""
    values = int_list_arg(text, minimum=0, flag="--k", example="3")
    if len(values) != 1 or values[0] > MAX_K:
        import argparse
        raise argparse.ArgumentTypeError(f"--k takes one int from 0 to {MAX_K}, got {text!r}")
    return values[0]


def _paths_k_arg(text: str) -> list[int]:
    """argparse `type=` for --paths-k: ints from 1 to MAX_K (a larger one failed after the matmul timing and the
    model's load)."""
    values = int_list_arg(text, minimum=1, flag="--paths-k", example="1,3")
    if any(k > MAX_K for k in values):
        import argparse
        raise argparse.ArgumentTypeError(f"--paths-k takes ints from 1 to {MAX_K}, got {text!r}")
    return values


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure thinking/embedding throughput and thinker memory on this machine")
    p.add_argument("--model", default=None, help="model to bench (default: the bundled model)")
    p.add_argument("--k", type=_k_arg, default=3, help=f"thoughts per query, 0 to {MAX_K} (default 3)")
    p.add_argument("--max-new-tokens", type=positive_int_arg, default=None,
                   help="thought length limit (default: the model's own)")
    p.add_argument("--queries", type=positive_int_arg, default=16, help="queries for the batched modes (default: 16)")
    p.add_argument("--one-by-one", type=positive_int_arg, default=4, help="queries for the one-at-a-time mode (default: 4)")
    p.add_argument("--docs", type=positive_int_arg, default=128, help="documents for encode_documents (default: 128)")
    p.add_argument("--batch-size", type=positive_int_arg, default=32,
                   help="batch size for thinking and embedding (queries per thinking batch; default: 32)")
    p.add_argument("--throughput-only", action="store_true",
                   help="skip the load-time and memory rows (fresh processes, about a minute)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N for the throughput rows (default: cuda if "
                                                  "available); load times and thinker memory are CPU figures")
    p.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp16", "fp32"),
                   help="dtype of the timed engine (default: auto, bf16 where the device runs it fast, else fp32); "
                        "documents are also timed in fp32 beside any other")
    p.add_argument("--paths-k", type=_paths_k_arg, default=[1, 3],
                   help=f"k values for the reference-vs-ours rows, 1 to {MAX_K}, comma-separated (default: 1,3)")
    p.add_argument("--paths-batch", type=lambda t: int_list_arg(t, minimum=1, flag="--paths-batch", example="32,128"),
                   default=[32, 128],
                   help="batch sizes for the reference-vs-ours rows, comma-separated (default: 32,128)")
    p.add_argument("--paths-queries", type=positive_int_arg, default=None,
                   help="queries per reference-vs-ours row (default: one full batch)")
    p.add_argument("--paths-repeats", type=positive_int_arg, default=2,
                   help="turns of each path per row, the fastest kept (default 2: a shared machine has slow turns)")
    p.add_argument("--paths-compiled", action="store_true",
                   help="also time ours with compiled decoding (static KV cache + torch.compile; compile time apart)")
    p.add_argument("--paths-only", action="store_true", help="only the reference-vs-ours rows")
    # Not benchmarks/bench.json: run in a clone, the default would overwrite the figures the docs cite.
    p.add_argument("--output", default="bench.json",
                   help="where to write the JSON (and a _paths.png) (default: bench.json, in the current directory)")
    p.set_defaults(func=run_bench)
