"""Benchmark of the Ray path: documents/s for corpus encoding in one process without Ray (`encode_documents`), then
on Ray with each requested actor count, on the same documents and model, in one run.

    python -m o1_retriever.distributed bench --actors 1 2 --output benchmarks/scale_out.json \\
        --png benchmarks/scale_out.png

Each Ray configuration starts its own Ray (timed apart: `ray_start_s`) unless one is running in this process or
`--address` names a cluster, and runs the real `encode_files` path into a fresh temporary folder: its figures include
what a user pays (a model load in every actor, writing the shards), and its vectors are checked against the
one-process ones.
"""
from __future__ import annotations

import json
import os
import random
import re
import tempfile
import threading
import time
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomically
from ..machine import describe, load_average
from ..validation import check_positive_int

DEFAULT_DOCS = 600
DEFAULT_SHARD_SIZE = 64  # a few hundred documents still make several shards per actor
ONE_PROCESS = "one process, no Ray"


# ---- the corpus ---------------------------------------------------------------------------------------------------
def demo_variants(n: int, seed: int = 0) -> list[dict]:
    """`n` distinct short passages recombined from the bundled demo corpus: two or three of its sentences each (the
    demo passages' own length), titled after the passage of the first sentence. The same `n` and seed always give
    the same rows."""
    from ..corpus import DEMO_CORPUS, read_corpus
    check_positive_int(n, "docs")
    sentences = [(p.title, s) for p in read_corpus(DEMO_CORPUS) for s in re.split(r"(?<=[.!?])\s+", p.text.strip())]
    rng, rows, seen = random.Random(seed), [], set()
    while len(rows) < n:
        picked = rng.sample(range(len(sentences)), rng.choice((2, 3)))
        text = " ".join(sentences[i][1] for i in picked)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"_id": f"demo-{len(rows):06d}", "title": sentences[picked[0]][0], "text": text})
    return rows


def _write_jsonl(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def prepare_corpus(corpus: str | None, docs: int, folder: Path) -> tuple[Path, dict]:
    """(the file every configuration encodes, what it holds). A user corpus is copied (first `docs` rows) into the
    temporary `folder` only, never beside the original."""
    if corpus is None:
        path = folder / "demo_variants.jsonl"
        _write_jsonl(path, demo_variants(docs))
        return path, {"source": "bundled demo corpus (32 passages) recombined into distinct 2-3 sentence passages"}
    if docs == 0:
        return Path(corpus).expanduser(), {"source": str(corpus)}
    rows = [{"_id": r.id, "text": r.text} for r in islice(_records(corpus, docs), docs)]
    if len(rows) < docs:
        raise ValueError(f"--docs {docs}: {corpus} holds only {len(rows)} rows; pass at most that, or 0 for all")
    path = folder / "corpus_head.jsonl"
    _write_jsonl(path, rows)  # the embedded text ("title. text"), so the actors embed the same strings
    return path, {"source": f"{corpus} (first {docs} rows)"}


def _records(path, shard_size: int):
    """The corpus's records shard by shard, exactly as the Ray workers read and embed them."""
    from .shards import plan_shards, read_shard
    for shard in plan_shards(path, shard_size, "documents")[1]:
        yield from read_shard(shard, "documents")


def corpus_texts(path: Path, shard_size: int) -> tuple[list[str], list[str]]:
    """(ids, texts) exactly as the Ray workers read and embed them."""
    records = list(_records(path, shard_size))
    return [r.id for r in records], [r.text for r in records]


# ---- the machine --------------------------------------------------------------------------------------------------
def _cpu_times() -> list[int] | None:
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def cpu_share(before: list[int] | None, after: list[int] | None) -> dict | None:
    """How the whole machine's CPU time went between two /proc/stat readings, in percent: busy (any process,
    ours and the other jobs'), idle, and stolen by the hypervisor."""
    if not before or not after:
        return None
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta[:8]) or 1
    idle = delta[3] + delta[4]
    steal = delta[7] if len(delta) > 7 else 0
    return {"busy_pct": round(100 * (total - idle - steal) / total, 1), "idle_pct": round(100 * idle / total, 1),
            "steal_pct": round(100 * steal / total, 1)}


def machine() -> dict:
    """The shared description, plus Ray's version (None: Ray runs are refused with the pip command)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return describe() | {"ray": version("ray")}
    except PackageNotFoundError:
        return describe() | {"ray": None}


class _Window:
    """Load average and CPU shares over one configuration, so a slow figure can be told from a busy machine."""

    def __enter__(self):
        self.load_before, self.cpu_before = load_average(), _cpu_times()
        return self

    def __exit__(self, *exc):
        self.record = {"load_average_before": self.load_before, "load_average_after": load_average(),
                       "cpu": cpu_share(self.cpu_before, _cpu_times())}


class _ShardClock:
    """When each output shard appears (a shard file is renamed into place whole): the time to the first shard is
    the actors' start-up plus one shard; the gaps after it give the pool's pace once every model is loaded."""

    def __init__(self, folder: Path, interval: float = 0.1):
        self.folder, self.interval, self.seen = folder, interval, {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self.stop.is_set():
            self._look()
            self.stop.wait(self.interval)

    def _look(self):
        now = time.perf_counter()
        if self.folder.is_dir():
            for path in self.folder.glob("part-*.parquet"):
                self.seen.setdefault(path.name, now)

    def __enter__(self):
        self.started = time.perf_counter()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._look()

    def summary(self, rows_by_shard: dict[str, int], worker_by_shard: dict[str, str]) -> dict:
        """The time to the first shard, and the pool's rate once its models are loaded: each actor encodes one shard
        at a time, so the gaps between the shards one worker wrote are its own pace; the pool's is their sum. None
        when some worker wrote a single shard (too few shards per actor to tell)."""
        if not self.seen:
            return {"first_shard_s": None, "steady_docs_per_s": None}
        first = min(self.seen.values())
        by_worker: dict[str, list[tuple[float, int]]] = {}
        for name, seen_at in self.seen.items():
            by_worker.setdefault(worker_by_shard.get(name), []).append((seen_at, rows_by_shard.get(name, 0)))
        rates = []
        for written in by_worker.values():
            written.sort()
            span = written[-1][0] - written[0][0]
            rates.append(sum(rows for _, rows in written[1:]) / span if len(written) > 1 and span > 0 else None)
        steady = round(sum(rates), 2) if rates and None not in rates else None
        return {"first_shard_s": round(first - self.started, 2), "steady_docs_per_s": steady}


# ---- the runs -----------------------------------------------------------------------------------------------------
def _one_process_pass(record: dict, embedder, texts: list[str], batch_size: int, when: str) -> np.ndarray:
    """One timed `encode_documents`, added to the one-process record, whose figures are its passes' mean."""
    with _Window() as window:
        started = time.perf_counter()
        vectors = embedder.encode_documents(texts, batch_size=batch_size)
        seconds = time.perf_counter() - started
    record["passes"].append({"when": when, "encode_s": round(seconds, 2),
                             "docs_per_s": round(len(texts) / seconds, 2), **window.record})
    encode_s = sum(p["encode_s"] for p in record["passes"]) / len(record["passes"])
    record.update({"encode_s": round(encode_s, 2), "docs_per_s": round(len(texts) / encode_s, 2),
                   "end_to_end_s": round(record["model_load_s"] + encode_s, 2)})
    return vectors


def run_one_process(spec, texts: list[str], batch_size: int):
    """`encode_documents` in this process, no Ray: the model load timed apart from the encoding.
    Returns (record, vectors, embedder); `one_process_again` adds a second pass after the Ray runs."""
    import torch
    started = time.perf_counter()
    embedder = spec.load()
    load_s = time.perf_counter() - started
    record = {"config": ONE_PROCESS, "ray": False, "actors": None,
              "device": str(next(embedder.encoder.model.parameters()).device),
              "torch_threads": torch.get_num_threads(), "model_load_s": round(load_s, 2), "passes": [],
              "fingerprint": embedder.fingerprint, "dim": int(embedder.dim)}
    vectors = _one_process_pass(record, embedder, texts, batch_size, "before the Ray runs")
    return record, vectors, embedder


def one_process_again(record: dict, embedder, texts: list[str], batch_size: int) -> None:
    """The same encoding once more, after the Ray runs: on a shared machine the other jobs' load drifts, and a
    baseline taken on both sides of the Ray runs (their mean is what the ratios use) shows how far."""
    _one_process_pass(record, embedder, texts, batch_size, "after the Ray runs")


def _probe_actor(ray, resources) -> dict:
    """What torch sees inside a Ray actor given the same resources as the encoding actors (Ray sets OMP_NUM_THREADS
    from an actor's CPU share, and torch takes its thread count from it), and the actor's niceness (Ray may start
    workers at a lower priority than the driver)."""

    @ray.remote(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus)
    class ThreadProbe:
        def report(self):
            import torch
            return {"torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "device": "cuda" if ray.get_gpu_ids() else "cpu",
                    "nice": os.nice(0) if hasattr(os, "nice") else None}

    probe = ThreadProbe.remote()
    try:
        return ray.get(probe.report.remote(), timeout=300)
    finally:
        ray.kill(probe)


def run_ray(corpus: Path, spec, actors: int, *, batch_size: int, shard_size: int, address: str | None,
            use_gpus: bool | None, reference: tuple[list[str], np.ndarray], workdir: Path) -> dict:
    """One Ray configuration: start (or join) Ray, encode the corpus through `encode_files` into a fresh folder,
    check its vectors against the one-process ones, and shut down the Ray this run started."""
    from .encode import encode_files
    from .load import read_vectors
    from .runtime import actor_resources, connect, require_ray
    from .shards import read_manifest, shard_info
    ray = require_ray()
    output = workdir / f"vectors-{actors}-actors"
    with _Window() as window:
        started = time.perf_counter()
        owned = connect(address)
        ray_start = time.perf_counter() - started
        try:
            resources = actor_resources(actors, use_gpus)
            with _ShardClock(output) as clock:
                result = encode_files("documents", corpus, output, spec, actors=actors, batch_size=batch_size,
                                      shard_size=shard_size, address=address, use_gpus=use_gpus)
                encode_s = time.perf_counter() - clock.started
            actor = {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus, **_probe_actor(ray, resources)}
        finally:
            if owned:
                ray.shutdown()
    shards = read_manifest(output)["shards"]
    rows_by_shard = {s["name"]: s["stop"] - s["start"] for s in shards}
    worker_by_shard = {s["name"]: shard_info(output / s["name"])["worker"] for s in shards}
    got = read_vectors(output)
    ids, vectors = reference
    where = {pid: i for i, pid in enumerate(ids)}
    same_ids = len(got["ids"]) == len(ids) and set(got["ids"]) == set(ids)
    diff = (float(np.abs(np.asarray(got["vectors"]) - vectors[[where[i] for i in got["ids"]]]).max())
            if same_ids else None)
    label = f"Ray, {actors} {resources.device} actor{'s' if actors > 1 else ''}"
    return {"config": label, "ray": True, "actors": actors, "actor": actor,
            "ray_start_s": round(ray_start, 2) if owned else None,
            "ray_session": "started by this run" if owned else "already running (start-up not measured)",
            "encode_s": round(encode_s, 2), "docs_per_s": round(result.rows / encode_s, 2),
            **clock.summary(rows_by_shard, worker_by_shard),
            "end_to_end_s": round(ray_start + encode_s, 2), "rows": result.rows, "shards": result.shards,
            "workers_that_wrote_shards": len(set(worker_by_shard.values())), "fingerprint": result.fingerprint,
            "every_document_once": same_ids, "max_abs_diff_vs_one_process": diff, **window.record}


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
    from .runtime import require_ray
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
