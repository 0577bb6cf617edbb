"""Load test: throughput and latency of a served model at several client concurrencies, next to the same queries
through in-process `encode_queries` batches (the ceiling the server's batching should approach).

    python -m o1_retriever.server.loadtest --model DIR --concurrency 1 32 --requests 64 --k 3 --output out.json

Starts `o1-retriever serve` as a subprocess on a free loopback port (clients in the server's own process would
fight it for the GIL); the clients are asyncio tasks, one query per request, each on its own connection, so the
server sees what many single-query callers send. The reference loads the same model here, after the server runs.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time

import numpy as np

WORDS = ("protein cell gene cancer vaccine virus immune insulin diabetes blood heart brain study patients risk "
         "disease treatment effect ocean river music history city language energy solar water plant").split()


def queries(n: int, salt: str) -> list[str]:
    """Distinct queries (no thought-cache or de-duplication shortcuts), 3-8 words each."""
    rng = np.random.default_rng(abs(hash(salt)) % 2**32)
    return [" ".join(rng.choice(WORDS, 3 + i % 6)) + f" {salt}{i}" for i in range(n)]


def _percentiles(latencies: list[float]) -> dict:
    p = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    return {"p50_ms": round(float(p[0]), 1), "p95_ms": round(float(p[1]), 1), "p99_ms": round(float(p[2]), 1)}


def run_clients(url: str, texts: list[str], concurrency: int, k: int, model: str) -> dict:
    import asyncio

    import httpx
    latencies, errors = [], []

    async def worker(todo, client):
        while todo:
            q = todo.pop()
            started = time.perf_counter()
            r = await client.post(url + "/v1/embeddings", json={"input": q, "model": model, "k": k})
            latencies.append(time.perf_counter() - started)
            if r.status_code != 200:
                errors.append(r.text[:200])

    async def clients():
        todo = list(reversed(texts))
        async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
            await asyncio.gather(*(worker(todo, client) for _ in range(concurrency)))

    started = time.perf_counter()
    asyncio.run(clients())
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(texts), "seconds": round(wall, 2),
            "queries_per_s": round(len(texts) / wall, 2), **_percentiles(latencies), "errors": len(errors)}


def start_server(args, port: int) -> subprocess.Popen:
    import httpx
    cmd = [sys.executable, "-m", "o1_retriever.cli", "serve", "--device", "cpu", "--dtype", args.dtype,
           "--port", str(port), "--name", "bench", "--max-batch", str(args.max_batch),
           "--max-wait-ms", str(args.max_wait_ms), "--log-level", "warning", "--thought-cache", "off"]
    cmd += ["--model", args.model] if args.model else []
    cmd += ["--max-new-tokens", str(args.max_new_tokens)] if args.max_new_tokens else []
    proc = subprocess.Popen(cmd)  # no thought cache: every request thinks, as in the reference
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start: {' '.join(cmd)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m o1_retriever.server.loadtest", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model dir or id (default: the bundled model)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--k", type=int, nargs="+", default=[3, 0], help="thoughts per query; one run per value")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=64, help="requests per run (bounded: this is a loopback test)")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--output", default=None, help="write the JSON here too")
    args = p.parse_args(argv)

    from .. import O1Embedder
    options = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    emb = O1Embedder.from_pretrained(args.model, device="cpu", dtype=args.dtype, thought_cache=False, **options)
    emb.encode_queries(queries(4, "warm"), k=max(args.k), show_progress_bar=False)  # first-call set-up, not timed
    report = {"model": repr(emb), "command": "python -m o1_retriever.server.loadtest " + " ".join(argv or sys.argv[1:]),
              "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "runs": []}
    reference = {}
    for k in args.k:  # before the server starts: nothing else of ours runs meanwhile; best of two (a shared CPU)
        texts = queries(args.requests, f"k{k}-inproc-")
        walls = []
        for _ in range(2):
            started = time.perf_counter()
            emb.encode_queries(texts, k=k, batch_size=args.max_batch, show_progress_bar=False)
            walls.append(time.perf_counter() - started)
        reference[k] = {"k": k, "mode": "in-process encode_queries", "batch_size": args.max_batch,
                        "requests": len(texts), "seconds": round(min(walls), 2),
                        "queries_per_s": round(len(texts) / min(walls), 2)}
        report["runs"].append(reference[k])
        print(json.dumps(reference[k]), file=sys.stderr)
    del emb
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_server(args, port)
    url = f"http://127.0.0.1:{port}"
    for k in args.k:  # the server's first call at each k, not timed
        run_clients(url, queries(2, f"warm{k}-"), 1, k, "bench-query")
    for k in args.k:
        for c in args.concurrency:
            run = {"k": k, "mode": "server"} | run_clients(url, queries(args.requests, f"k{k}-c{c}-"), c, k,
                                                            "bench-query")
            run["share_of_in_process"] = round(run["queries_per_s"] / reference[k]["queries_per_s"], 2)
            report["runs"].append(run)
            print(json.dumps(run), file=sys.stderr)
    server.terminate()
    server.wait(60)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
