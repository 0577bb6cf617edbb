"""The timed runs of the Ray benchmark (`bench.py`): `encode_documents` in one process, and one Ray configuration
through the real `encode_files` path, with the clock that tells the actors' start-up from their pace."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from .bench_setup import LoadWindow

ONE_PROCESS = "one process, no Ray"


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


def _one_process_pass(record: dict, embedder, texts: list[str], batch_size: int, when: str) -> np.ndarray:
    """One timed `encode_documents`, added to the one-process record, whose figures are its passes' mean."""
    with LoadWindow() as window:
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
    from .outputs import read_manifest, shard_info
    ray = require_ray()
    output = workdir / f"vectors-{actors}-actors"
    with LoadWindow() as window:
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
