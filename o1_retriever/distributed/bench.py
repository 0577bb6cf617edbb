"""Benchmark of the Ray path: documents/s for corpus encoding in one process without Ray (`encode_documents`), then
on Ray with each requested actor count, on the same documents and model, in one run.

    python -m o1_retriever.distributed bench --actors 1 2 --output benchmarks/scale_out.json \\
        --png benchmarks/scale_out.png

Each Ray configuration starts its own Ray (timed apart: `ray_start_s`) unless one is running in this process or
`--address` names a cluster, and runs the real `encode_files` path into a fresh temporary folder: its figures include
what a user pays (a model load in every actor, writing the shards), and its vectors are checked against the
one-process ones.

The documents and the machine's description are in `bench_setup`, the timed runs in `bench_runs`; this module puts
them together into the report, its figure and the command.
"""
from __future__ import annotations

import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomically
from ..machine import load_average
from ..validation import check_positive_int
from .bench_runs import ONE_PROCESS, one_process_again, run_one_process, run_ray
from .bench_setup import corpus_texts, cpu_share, demo_variants, machine, prepare_corpus

__all__ = ["DEFAULT_DOCS", "DEFAULT_SHARD_SIZE", "ONE_PROCESS", "RATIOS_EXPLAINED", "add_bench_parser", "add_ratios",
           "benchmark", "corpus_texts", "cpu_share", "demo_variants", "machine", "one_process_again", "plot",
           "prepare_corpus", "run_bench", "run_one_process", "run_ray"]

DEFAULT_DOCS = 600
DEFAULT_SHARD_SIZE = 64  # a few hundred documents still make several shards per actor


# ---- the report ---------------------------------------------------------------------------------------------------
def add_ratios(runs: list[dict]) -> None:
    """Each Ray run against the one-process run: how many times longer it took (1.0 = no overhead)."""
    base = next(r for r in runs if r["config"] == ONE_PROCESS)
    for run in runs:
        if run is base:
            continue
        run["overhead_vs_one_process"] = {
            "encode": round(base["docs_per_s"] / run["docs_per_s"], 2),
            "end_to_end": round(run["end_to_end_s"] / base["end_to_end_s"], 2),
            "steady": (round(base["docs_per_s"] / run["steady_docs_per_s"], 2)
                       if run.get("steady_docs_per_s") else None)}


RATIOS_EXPLAINED = {
    "encode": "one-process docs/s (from the mean time of its passes) divided by this run's docs/s; this run's "
              "encode_s includes planning, loading the model in every actor and writing Parquet shards, not Ray's "
              "start-up (ray_start_s)",
    "end_to_end": "(ray_start_s + encode_s) divided by the one-process (model_load_s + encode_s): from nothing "
                  "loaded to every vector",
    "steady": "one-process docs/s divided by this run's steady_docs_per_s: the actors' pace once their models are "
              "loaded (each actor's rows over the time between the first and last shard it wrote, summed over "
              "actors)",
}


def benchmark(corpus: str | None = None, docs: int = DEFAULT_DOCS, actors=(1, 2), *, model: str | None = None,
              dtype: str | None = None, batch_size: int = 32, shard_size: int = DEFAULT_SHARD_SIZE,
              address: str | None = None, use_gpus: bool | None = None, workdir: str | None = None,
              baseline_after: bool = True, command: list[str] | None = None) -> dict:
    """Run every configuration on the same documents and model; returns the report (what `--output` writes).
    The one-process encoding runs first and, with `baseline_after`, once more after the Ray runs."""
    from .runtime import check_actors_fit, require_ray
    from .workers import ModelSpec
    if isinstance(docs, bool) or not isinstance(docs, int) or docs < 0:
        raise ValueError(f"docs must be a positive int (or 0: the whole --corpus), got {docs!r}")
    if docs == 0 and corpus is None:
        raise ValueError("--docs 0 (the whole corpus) needs --corpus PATH; the demo variants need a count")
    actors = list(actors)
    if not actors:
        raise ValueError("actors is empty: give at least one actor count, e.g. --actors 1 2")
    for n in actors:
        check_positive_int(n, "actors")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(shard_size, "shard_size")
    require_ray()  # before minutes of one-process encoding: a missing Ray fails now
    for n in actors:  # so is a count the Ray cannot hold, where it runs here
        check_actors_fit(n, use_gpus, address)
    options = {"thought_cache": False, **({"dtype": dtype} if dtype else {})}  # documents never think
    spec = ModelSpec(model, options)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_start, clock = load_average(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="o1-scale-out-", dir=workdir) as tmp:
        tmp = Path(tmp)
        path, about = prepare_corpus(corpus, docs, tmp)
        ids, texts = corpus_texts(path, shard_size)
        lengths = np.array([len(t.split()) for t in texts])
        about.update({"docs": len(texts), "words_per_doc_mean": round(float(lengths.mean()), 1),
                      "words_per_doc_max": int(lengths.max())})
        base, vectors, embedder = run_one_process(spec, texts, batch_size)
        runs = [base]
        for n in actors:
            runs.append(run_ray(path, spec, n, batch_size=batch_size, shard_size=shard_size, address=address,
                                use_gpus=use_gpus, reference=(ids, vectors), workdir=tmp))
        if baseline_after:
            one_process_again(base, embedder, texts, batch_size)
        del embedder
    add_ratios(runs)
    shared = ("a shared machine: other jobs ran at the same time, so the figures move with their load (see the "
              "load averages and each run's cpu shares); compare the configurations of one run, not runs")
    return {"tool": "python -m o1_retriever.distributed bench", "created": started_at, "command": command,
            "machine": {**machine(), "note": shared}, "load_average": {"start": load_start, "end": load_average()},
            "seconds": round(time.perf_counter() - clock, 1), "corpus": about,
            "model": {**spec.as_dict(), "fingerprint": base["fingerprint"], "dim": base["dim"]},
            "settings": {"embed_batch_size": batch_size, "shard_size": shard_size, "address": address,
                         "use_gpus": use_gpus},
            "runs": runs, "ratios": RATIOS_EXPLAINED,
            "gpu": ("measured: the Ray runs used GPU actors" if any(r.get("actor", {}).get("num_gpus") for r in runs)
                    else "not measured: this machine has no GPU; run the same command where Ray sees GPUs")}


# ---- the figure ---------------------------------------------------------------------------------------------------
def plot(report: dict, path) -> None:
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError('the benchmark PNG needs matplotlib: pip install "o1-retriever[eval]"') from e
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt
    runs = report["runs"]
    labels = [r["config"].replace(", ", "\n") + (
        "\n(passes: " + " / ".join(f"{p['docs_per_s']:.1f}" for p in r["passes"]) + ")" if "passes" in r else "")
        for r in runs]
    encode = [r["docs_per_s"] for r in runs]
    steady = [r["docs_per_s"] if not r["ray"] else r.get("steady_docs_per_s") for r in runs]
    x = np.arange(len(runs))
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    ax.bar(x - 0.2, encode, 0.4, label="whole encode (Ray: incl. each actor loading the model)", color="C0")
    ax.bar(x + 0.2, [v or 0 for v in steady], 0.4, label="once the models are loaded", color="C1")
    for i, run in enumerate(runs):
        ratios = run.get("overhead_vs_one_process", {})
        for offset, value, ratio in ((-0.2, encode[i], ratios.get("encode")), (0.2, steady[i], ratios.get("steady"))):
            text = "n/a" if value is None else f"{value:.1f}" + (f"\n{ratio:.2f}x time" if ratio else "")
            ax.annotate(text, (x[i] + offset, value or 0), ha="center", va="bottom", fontsize=8)
    m, load = report["machine"], report["load_average"]
    ax.set_xticks(x, labels)
    ax.set_ylabel("documents / s")
    ax.set_ylim(0, max(encode + [v or 0 for v in steady]) * 1.35)
    gpu = f"GPU: {m['gpu']}" if m.get("gpu") else "no GPU: GPU actors not measured"
    start, end = (load[key][0] if load[key] else "?" for key in ("start", "end"))
    ax.set_title(f"Corpus encoding, {report['corpus']['docs']} docs, {m['cpu_count']} CPUs ({gpu})\n"
                 f"shared machine: load average {start} at start, {end} at end", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- command line -------------------------------------------------------------------------------------------------
def add_bench_parser(sub) -> None:
    """`python -m o1_retriever.distributed bench` (added to the module's sub-commands)."""
    from ..validation import positive_int_arg
    p = sub.add_parser("bench", help="documents/s: one process without Ray, then Ray with each actor count")
    p.add_argument("--corpus", default=None, metavar="PATH",
                   help="JSONL or Parquet corpus (default: the bundled demo corpus recombined into --docs passages)")
    p.add_argument("--docs", type=int, default=DEFAULT_DOCS, metavar="N",
                   help=f"documents to encode (default {DEFAULT_DOCS}; with --corpus its first N rows, 0 for all)")
    p.add_argument("--actors", type=positive_int_arg, nargs="+", default=[1, 2], metavar="N",
                   help="Ray actor counts to measure, one run each (default: 1 2)")
    p.add_argument("--model", default=None, help="model dir or hub id (default: the bundled model)")
    p.add_argument("--dtype", default=None, help="auto, bf16, fp16 or fp32 (default auto: bf16 on GPUs)")
    p.add_argument("--embed-batch-size", type=positive_int_arg, default=32, metavar="N",
                   help="texts per forward pass, in the one process and in each actor (default 32)")
    p.add_argument("--shard-size", type=positive_int_arg, default=DEFAULT_SHARD_SIZE, metavar="N",
                   help=f"documents per shard (default {DEFAULT_SHARD_SIZE}: enough shards for every actor)")
    p.add_argument("--address", default=None, metavar="ADDR", help="Ray cluster to join (default: a local Ray, "
                                                                   "started and timed for each configuration)")
    p.add_argument("--cpu-actors", action="store_true", help="CPU actors even where the cluster has GPUs")
    p.add_argument("--output", default=None, metavar="JSON", help="write the report here (default: print it)")
    p.add_argument("--png", default=None, metavar="PNG", help="bar chart of documents/s per configuration")
    p.add_argument("--baseline-once", action="store_true",
                   help="encode in one process only before the Ray runs (default: before and after, to see the "
                        "machine's drift)")
    p.add_argument("--workdir", default=None, metavar="DIR",
                   help="where the temporary corpus and vector shards go (default: the system's temporary folder)")
    p.set_defaults(func=run_bench)


def run_bench(args) -> int:
    import sys
    report = benchmark(args.corpus, args.docs, args.actors, model=args.model, dtype=args.dtype,
                       batch_size=args.embed_batch_size, shard_size=args.shard_size, address=args.address,
                       use_gpus=False if args.cpu_actors else None, workdir=args.workdir,
                       baseline_after=not args.baseline_once,
                       command=(["python", "-m", "o1_retriever.distributed", *sys.argv[1:]]
                                if Path(sys.argv[0]).name == "__main__.py" else None))
    text = json.dumps(report, indent=1)
    if args.output:
        write_text_atomically(args.output, text + "\n")
    else:
        print(text)
    if args.png:
        plot(report, args.png)
    for run in report["runs"]:
        extra = (f", Ray start {run['ray_start_s']} s" if run.get("ray_start_s") is not None
                 else f", model load {run['model_load_s']} s" if "model_load_s" in run else "")
        ratio = run.get("overhead_vs_one_process", {}).get("encode")
        print(f"{run['config']}: {run['docs_per_s']} docs/s ({run['encode_s']} s encoding{extra})"
              + (f", {ratio}x the one-process time" if ratio else ""), file=sys.stderr)
    return 0
