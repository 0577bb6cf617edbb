"""Prometheus metrics for one server. Each app gets its own registry, so two apps in one process (tests, or an
embedding app mounted beside others) never collide over metric names."""
from __future__ import annotations

import threading

from .deps import require

# Engine calls hold 1..max_batch texts; latency spans a cache hit (ms) to a long think on a CPU (tens of s).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self):
        prom = require("prometheus_client")
        self.registry = r = prom.CollectorRegistry()
        self.requests = prom.Counter("o1_requests", "HTTP requests by route and status", ["route", "status"],
                                     registry=r)
        self.latency = prom.Histogram("o1_request_latency_seconds", "request latency by route", ["route"],
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.inputs = prom.Counter("o1_inputs", "texts received by kind (query, document, think)", ["kind"],
                                   registry=r)
        self.batch_size = prom.Histogram("o1_batch_size", "texts per merged engine call", ["kind"],
                                         buckets=BATCH_BUCKETS, registry=r)
        self.engine_seconds = prom.Histogram("o1_engine_seconds", "time per merged engine call", ["kind"],
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = prom.Gauge("o1_queue_depth", "texts waiting for the engine", registry=r)
        self.waiting_for_room = prom.Gauge("o1_waiting_for_room", "texts of requests waiting in line for room in the "
                                           "queue (--max-queue)", registry=r)
        self._lookups = prom.Counter("o1_thought_cache_lookups", "queries looked up in the thought cache",
                                     registry=r)
        self._hits = prom.Counter("o1_thought_cache_hits", "queries whose thoughts the cache held", registry=r)
        # A ready-made ratio for dashboards without PromQL (hits / lookups since start; 0 before any lookup).
        prom.Gauge("o1_thought_cache_hit_ratio", "thought cache hits / lookups since start",
                   registry=r).set_function(self.hit_ratio)
        self._counts, self._lock = [0, 0], threading.Lock()

    def cache(self, hits: int, lookups: int) -> None:
        with self._lock:
            self._counts[0] += hits
            self._counts[1] += lookups
        self._hits.inc(hits)
        self._lookups.inc(lookups)

    def hit_ratio(self) -> float:
        with self._lock:
            hits, lookups = self._counts
        return hits / lookups if lookups else 0.0

    def render(self) -> tuple[bytes, str]:
        prom = require("prometheus_client")
        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST
