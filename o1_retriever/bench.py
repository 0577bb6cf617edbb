"""`o1-retriever bench`: throughput and memory of the engine, all measured in one run on one machine.

Not a test: figures depend on the machine. Results go to JSON (and a rich table) for notes and READMEs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from .atomic import atomic_path, write_text_atomically
from .cache import ThoughtCache
from .composite import read_composite
from .corpus import DEMO_CORPUS, read_corpus
from .default_model import bundled_model_path
from .machine import describe as describe_machine
from .speed import compare_paths, count_thought_tokens, encoder_cost, plot_paths, sync, timed
from .validation import MAX_K, check_k, check_positive_int, int_list_arg, positive_int_arg

BENCH_QUERIES = [
    "Why does bread rise in the oven?", "How do vaccines protect against disease?", "What makes Mars red?",
    "What causes ocean tides?", "How does insulin control blood sugar?", "Why do corals bleach?",
    "How do lithium-ion batteries store energy?", "What did the printing press change?",
    "How does public-key encryption work?", "Why do antibiotics stop working?", "What happens during deep sleep?",
    "How do volcanoes erupt?", "What is inflation?", "How do search engines rank pages?",
    "How do neural networks learn?", "Why is caffeine stimulating?",
]


def matmul_tflops(dtype: torch.dtype, n: int = 2048, reps: int = 10, device=torch.device("cpu"),
                  budget_s: float = 2.0, rounds: int = 3) -> float:
    """Matmul TFLOP/s on square products of up to n x n, timed for about budget_s. The size doubles from 256
    only while the next one fits the budget: a dtype the processor emulates (bf16 on a CPU without AMX or
    AVX512-BF16) costs a second, not the minutes of 2048^3 products. The fastest of `rounds` timed rounds is
    kept: on a shared CPU one round can run well below the machine's rate."""
    size = 256
    while True:
        a, b = torch.randn(size, size, dtype=dtype, device=device), torch.randn(size, size, dtype=dtype, device=device)
        a @ b  # warm-up: first-call allocation and kernel selection
        one = min(timed(lambda: a @ b, device)[1] for _ in range(3))  # one slow call must not stop the growth
        if size >= n or 8 * one * reps > budget_s:  # the next size costs 8x
            break
        size *= 2
    for _ in range(2):  # more warm-up at the size timed: AMX tiles and caches settle after a few products
        a @ b
    reps = max(1, min(reps, int(budget_s / rounds / max(one, 1e-9))))
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = max(best, 2 * size ** 3 * reps / (time.perf_counter() - t) / 1e12)
    return best


def bench_queries_text(n: int) -> list[str]:
    """n distinct queries: the built-in ones, then numbered variants (repeats would be thought about only
    once, since the embedder dedups them, and inflate queries/s)."""
    m = len(BENCH_QUERIES)
    return [BENCH_QUERIES[i % m] if i < m else f"{BENCH_QUERIES[i % m]} ({i // m})" for i in range(n)]


def bench_docs_text(n: int) -> list[str]:
    """Exactly n documents: the demo corpus repeated as often as needed."""
    texts = [p.full_text for p in read_corpus(DEMO_CORPUS)]
    return [texts[i % len(texts)] for i in range(n)]


def bench_queries(emb, queries, k, one_by_one_n, batch_size=32):
    """queries/s and thought tokens/s per mode: thought lengths vary by query (an untrained model may
    stop at once or run to max_new_tokens), so tokens/s is the fair comparison across modes."""

    def run(fn, n=len(queries)):
        results, s = timed(fn)
        tokens = count_thought_tokens(emb.thinker.tokenizer, [ts for r in results for ts in r.thoughts])
        return {"queries_per_s": n / s, "thought_tokens_per_s": tokens / s, "seconds": s, "queries": n}

    def batched():
        return [emb.encode_queries(queries, k=k, batch_size=batch_size, return_thoughts=True)]

    rows = {}
    vector_cache, emb.vector_cache = emb.vector_cache, None
    emb.thought_cache = None
    # Warm-up on a full batch per mode: the first allocation of each KV-cache size is slow, and would land in
    # whichever mode is timed first.
    for fused in (True, False):
        emb.fused = fused
        emb.encode_queries(queries[:batch_size], k=k, batch_size=batch_size)
    emb.fused = True
    rows["fused"] = run(batched)
    emb.fused = False
    rows["two_pass_batched"] = run(batched)
    sub = queries[:one_by_one_n]
    rows["one_at_a_time"] = run(lambda: [emb.encode_queries([q], k=k, return_thoughts=True) for q in sub], len(sub))
    with tempfile.TemporaryDirectory() as tmp:
        emb.thought_cache = ThoughtCache(os.path.join(tmp, "t.sqlite"))
        emb.encode_queries(queries, k=k, batch_size=batch_size)  # fill
        rows["cache_hit"] = run(batched)
        emb.thought_cache.close()
    emb.thought_cache, emb.fused = None, True
    emb.vector_cache = vector_cache
    if vector_cache is not None:  # a repeat of the same queries: served from finished vectors, no forward at all
        emb.encode_queries(queries, k=k, batch_size=batch_size)  # fill
        rows["vector_cache_hit"] = run(batched)
    return rows


def bench_documents(emb, docs, peak_tflops, batch_size=32):
    """docs/s and tokens/s, and the share of the matmul peak in the encoder's own dtype that they reach."""
    flops, tokens = encoder_cost(emb, docs, emb.document_max_length)
    emb.encode_documents(docs[: 2 * batch_size], batch_size=batch_size)  # warm-up
    _, s = timed(lambda: emb.encode_documents(docs, batch_size=batch_size))
    return {"docs_per_s": len(docs) / s, "tokens_per_s": tokens / s,
            "fraction_of_peak": flops / s / (peak_tflops * 1e12)}


def _thinker_source(model) -> str:
    """What `load_causal_lm` loads for a model's thinker (a composite names it in o1_composite.json)."""
    path = bundled_model_path(model) or model
    spec = read_composite(path)
    return spec.thinker if spec is not None else str(path)


def _child_json(code: str, env: dict | None = None) -> dict:
    """Run `code` in a fresh Python process: the JSON its last line prints."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_psutil() -> None:
    try:
        import psutil  # noqa: F401  (the child measures with it)
    except ImportError as e:
        raise ImportError("the bench's memory rows need psutil: pip install 'o1-retriever[bench]' (or skip them: "
                          "--throughput-only)") from e


def _thinker_memory(source, quantization) -> dict:
    """Load the thinker in a fresh process and report its footprint and the process's RSS growth."""
    _check_psutil()
    return _child_json(
        "import json,os,psutil,torch;from o1_retriever.loading import load_causal_lm;"
        "p=psutil.Process();r0=p.memory_info().rss;"
        f"lm=load_causal_lm({_thinker_source(source)!r},device=torch.device('cpu'),dtype=torch.bfloat16,quantization={quantization!r});"
        "print(json.dumps({'footprint_mb':lm.model.get_memory_footprint()/2**20,'rss_growth_mb':(p.memory_info().rss-r0)/2**20}))")


def load_times(source=None) -> dict:
    """Seconds to import and to `from_pretrained` in fresh processes: first with an empty cache dir (GGUF
    conversion + adapter merge happen then), then again on that cache (what every later start costs)."""
    code = ("import time;t=time.perf_counter();import json;from o1_retriever import O1Embedder;"
            "i=time.perf_counter()-t;t=time.perf_counter();"
            f"O1Embedder.from_pretrained({source!r}, thought_cache=False);"
            "print(json.dumps({'import_s':i,'from_pretrained_s':time.perf_counter()-t}))")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "O1_RETRIEVER_CACHE": cache, "HF_HUB_OFFLINE": "1"}
        return {run: _child_json(code, env) for run in ("first_run", "later_runs")}  # the first fills the cache


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
    result["queries"] = bench_queries(emb, queries, args.k, args.one_by_one, args.batch_size)
    result["encode_documents"] = {dtype: bench_documents(emb, docs, peak[dtype], args.batch_size)}
    del emb
    if dtype != "fp32":  # the full-precision baseline beside it
        emb32 = O1Embedder.from_pretrained(args.model, device=device, dtype="fp32", thought_cache=False)
        result["encode_documents"]["fp32"] = bench_documents(emb32, docs, peak["fp32"], args.batch_size)
        del emb32
    result["load_seconds"], result["thinker_memory_mb"] = {}, {}
    if not args.throughput_only:
        result["load_seconds"], result["thinker_memory_mb"] = load_and_memory_rows(args.model)
    return _finish(result, args, console)


def load_and_memory_rows(model) -> tuple[dict, dict]:
    """(load_seconds, thinker_memory_mb), each measured in fresh processes. A process that fails (no bitsandbytes
    for 4-bit, or killed for memory) gives an {"error": ...} row: the minutes of throughput timing before it are
    still written."""
    def measured(measure, *args) -> dict:
        try:
            return measure(*args)
        except subprocess.CalledProcessError as e:
            lines = (e.stderr or "").strip().splitlines()
            return {"error": lines[-1] if lines else f"the measuring process exited with {e.returncode} and "
                                                      "printed nothing (killed for memory?)"}

    memory = {"bf16": measured(_thinker_memory, model, None), "4bit": measured(_thinker_memory, model, "4bit")}
    return measured(load_times, model), memory


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
        table.add_row(f"thinker memory {q}", json.dumps({k: round(v) for k, v in r.items()} if "error" not in r else r))
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
    p.add_argument("--output", default="benchmarks/bench.json",
                   help="where to write the JSON (and a _paths.png) (default: benchmarks/bench.json, relative to the "
                        "current directory)")
    p.set_defaults(func=run_bench)
