"""Load test: throughput and latency of a served model at several client concurrencies, next to the same queries
through in-process `encode_queries` batches (the ceiling the server's batching should approach).

    python -m o1_retriever.server.loadtest --concurrency 1 8 32 --k 3 0 --requests 64 \\
        --output benchmarks/serve.json --png benchmarks/serve.png

Starts `o1-retriever serve` as a subprocess on a free loopback port (clients in the server's own process would
fight it for the GIL); the clients are asyncio tasks, one query per request, each on its own connection, so the
server sees what many single-query callers send. Every run at one k sends the same queries, and the in-process
reference encodes those very queries in this process (the server idle meanwhile), once before and once after that
k's server runs: on a shared machine the CPU left to us drifts over minutes, and the bracket keeps the comparison
honest (the faster of the two is the reference).
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import zlib

import numpy as np

from ..atomic import write_text_atomically
from ..machine import describe as machine
from ..machine import load_average

WORDS = ("protein cell gene cancer vaccine virus immune insulin diabetes blood heart brain study patients risk "
         "disease treatment effect ocean river music history city language energy solar water plant").split()


def queries(n: int, salt: str) -> list[str]:
    """Distinct queries (no thought-cache or de-duplication shortcuts), 3-8 words each, the same on every run."""
    rng = np.random.default_rng(zlib.crc32(salt.encode()))
    return [" ".join(rng.choice(WORDS, 3 + i % 6)) + f" {salt}{i}" for i in range(n)]


def _percentiles(latencies: list[float]) -> dict:
    keys = ("p50_ms", "p95_ms", "p99_ms")
    if not latencies:
        return dict.fromkeys(keys)
    return {key: round(float(ms), 1) for key, ms in zip(keys, np.percentile(np.array(latencies) * 1000, [50, 95, 99]))}


def run_clients(url: str, texts: list[str], concurrency: int, k: int, model: str,
                time_limit: float = float("inf")) -> dict:
    import asyncio

    import httpx
    latencies, errors = [], []

    async def worker(todo, client, deadline):
        while todo and time.perf_counter() < deadline:
            q = todo.pop()
            started = time.perf_counter()
            try:
                r = await client.post(url + "/v1/embeddings", json={"input": q, "model": model, "k": k})
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}: {e}")
            latencies.append(time.perf_counter() - started)

    async def clients(deadline):
        todo = list(reversed(texts))
        async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=concurrency)) as client:
            await asyncio.gather(*(worker(todo, client, deadline) for _ in range(concurrency)))

    started = time.perf_counter()
    asyncio.run(clients(started + time_limit))
    wall = time.perf_counter() - started
    done = len(latencies)
    return {"concurrency": concurrency, "requests": done, "planned": len(texts), "seconds": round(wall, 2),
            "queries_per_s": round(done / wall, 3), **_percentiles(latencies), "errors": len(errors),
            "error_samples": errors[:3]}


def free_port() -> int:
    """A loopback port free right now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, port: int) -> subprocess.Popen:
    import httpx
    cmd = [sys.executable, "-m", "o1_retriever.cli", "serve", "--device", "cpu", "--dtype", args.dtype,
           "--port", str(port), "--name", "bench", "--max-batch", str(args.max_batch),
           "--max-wait-ms", str(args.max_wait_ms), "--log-level", "warning", "--thought-cache", "off",
           "--vector-cache", "off"]
    cmd += ["--model", args.model] if args.model else []
    cmd += ["--max-new-tokens", str(args.max_new_tokens)] if args.max_new_tokens else []
    proc = subprocess.Popen(cmd)  # no thought or vector cache: every request thinks, as in the reference
    deadline = time.monotonic() + 600
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the server did not start: {' '.join(cmd)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.5)


def engine_counters(url: str) -> dict:
    """The server's own account from /metrics: merged engine calls for queries, texts in them, seconds inside."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families
    wanted = {"o1_batch_size_count": "batches", "o1_batch_size_sum": "texts", "o1_engine_seconds_sum": "engine_seconds"}
    values = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=30).text):
        for sample in family.samples:
            if sample.name in wanted and sample.labels.get("kind") == "query":
                values[wanted[sample.name]] = sample.value
    return values


def with_engine_share(url: str, run) -> dict:
    """A run's figures plus what the server's engine did meanwhile: the rest of the wall time is HTTP, queueing
    and the clients (which share this machine's cores)."""
    before = engine_counters(url)
    row = run()
    after = engine_counters(url)
    calls, texts = after["batches"] - before["batches"], after["texts"] - before["texts"]
    return row | {"engine_calls": int(calls), "mean_batch": round(texts / calls, 1) if calls else None,
                  "engine_seconds": round(after["engine_seconds"] - before["engine_seconds"], 2)}


def plot(report: dict, path: str) -> None:
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError('the load test PNG needs matplotlib: pip install "o1-retriever[eval]"') from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, LogLocator, NullFormatter, ScalarFormatter
    runs = report["runs"]
    ks = sorted({r["k"] for r in runs}, reverse=True)
    fig, axes = plt.subplots(1, 1 + len(ks), figsize=(5 * (1 + len(ks)), 4))
    ax = axes[0]
    for i, k in enumerate(ks):
        color = f"C{i}"
        served = [r for r in runs if r["k"] == k and r["mode"] == "server"]
        ax.plot([r["concurrency"] for r in served], [r["queries_per_s"] for r in served], "o-", color=color,
                label=f"server, k={k}")
        for r in runs:
            if r["k"] == k and r["mode"] != "server":
                ax.axhline(r["queries_per_s"], color=color, linestyle="--", label=f"in-process batches, k={k}")
        lat = axes[1 + i]
        for name, style in (("p50_ms", "o-"), ("p95_ms", "s--"), ("p99_ms", "^:")):
            lat.plot([r["concurrency"] for r in served], [r[name] / 1000 for r in served], style,
                     label=name.split("_")[0])
        lat.set(ylabel="latency (s)", title=f"request latency, k={k}")
        lat.legend()
    ax.set(ylabel="queries/s", title="throughput")
    ax.legend(fontsize=8)
    concurrency = sorted({r["concurrency"] for r in runs if r["mode"] == "server"})
    for a in axes:  # log axes with plain numbers: 1, 8, 32 clients; 0.5, 2, 10 q/s
        a.set(xscale="log", yscale="log", xlabel="concurrent clients")
        a.xaxis.set_major_locator(FixedLocator(concurrency))
        a.xaxis.set_major_formatter(ScalarFormatter())
        a.xaxis.set_minor_formatter(NullFormatter())
        a.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        a.yaxis.set_major_formatter(ScalarFormatter())
        a.yaxis.set_minor_formatter(NullFormatter())
        a.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"o1-retriever serve, {report['machine']['cpu_count']} CPU cores: {report['model']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m o1_retriever.server.loadtest", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model dir or id (default: the bundled model)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--k", type=int, nargs="+", default=[3, 0], help="thoughts per query; one run per value")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=64, help="requests per run (bounded: this is a loopback test)")
    p.add_argument("--time-limit", type=float, default=600.0,
                   help="seconds after which a run sends no new request (it counts what completed)")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--target", type=float, default=0.8,
                   help="share of in-process throughput the server should reach at the highest concurrency")
    p.add_argument("--output", default=None, help="write the JSON here too")
    p.add_argument("--png", default=None, help="write a PNG of throughput and latency against concurrency here")
    args = p.parse_args(argv)

    from .. import O1Embedder
    options = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    emb = O1Embedder.from_pretrained(args.model, device="cpu", dtype=args.dtype, thought_cache=False,
                                     vector_cache=False, **options)
    emb.encode_queries(queries(4, "warm"), k=max(args.k), show_progress_bar=False)  # first-call set-up, not timed
    command = "python -m o1_retriever.server.loadtest " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {"model": repr(emb), "command": command, "machine": machine(), "load_average_start": load_average(),
              "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "requests": args.requests,
              "time_limit_s": args.time_limit, "runs": []}
    texts = {k: queries(args.requests, f"k{k}-") for k in args.k}  # one query set per k: every run sends it

    def in_process(k: int) -> float:
        started = time.perf_counter()
        emb.encode_queries(texts[k], k=k, batch_size=args.max_batch, show_progress_bar=False)
        return time.perf_counter() - started

    port = free_port()
    server = start_server(args, port)
    url = f"http://127.0.0.1:{port}"
    try:
        for k in args.k:  # the server's first call at each k, not timed
            run_clients(url, queries(2, f"warm{k}-"), 1, k, "bench-query")
        for k in args.k:
            before = in_process(k)
            served = [{"k": k, "mode": "server"} | with_engine_share(url, lambda c=c: run_clients(
                url, texts[k], c, k, "bench-query", args.time_limit)) for c in args.concurrency]
            after = in_process(k)
            best = min(before, after)
            reference = {"k": k, "mode": "in-process encode_queries", "batch_size": args.max_batch,
                         "requests": len(texts[k]), "seconds": round(best, 2), "seconds_before": round(before, 2),
                         "seconds_after": round(after, 2), "queries_per_s": round(len(texts[k]) / best, 3)}
            for run in served:
                run["share_of_in_process"] = round(run["queries_per_s"] / reference["queries_per_s"], 3)
            for row in [reference, *served]:
                report["runs"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        server.terminate()
        server.wait(60)
    top = max(args.concurrency)
    report["load_average_end"] = load_average()
    report["target"] = {f"k={k}": {"concurrency": top, "share_of_in_process": run["share_of_in_process"],
                                   "target": args.target, "met": run["share_of_in_process"] >= args.target}
                        for k in args.k for run in report["runs"]
                        if run["mode"] == "server" and run["k"] == k and run["concurrency"] == top}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        write_text_atomically(args.output, text + "\n")
    if args.png:
        plot(report, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
