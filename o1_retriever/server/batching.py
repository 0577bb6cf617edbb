"""Dynamic batching: concurrent requests merged into one engine call.

Requests land in one queue. A single worker takes the oldest request, then every queued request of the same kind
(query at the same k, document, or think at the same k) until `max_batch` texts or until the oldest has waited
`max_wait_ms`, and runs them as one `encode_queries` / `encode_documents` / `think` call on one engine thread.
Merging is safe because each query's thoughts are sampled from its own seed (see `sampling.row_seeds`), so a
query's vector does not depend on which other requests shared its batch.

Requests that pile up while the engine is busy are already past their wait when it frees up, so under load every
call is as full as `max_batch` allows and no time is spent waiting.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..thinking import stop_when
from ..validation import check_choice
from .engine_call import Result, compute  # Result: importable from here, as before
from .window import cut, needs_cut, token_counts  # noqa: F401 (token_counts: importable from here, as before)

KINDS = ("query", "document", "think")


class ShuttingDown(RuntimeError):
    """The batcher stopped before this work ran: the server is shutting down (HTTP 503, not an engine failure)."""


@dataclass
class _Job:
    kind: str
    k: int
    texts: list[str]
    future: asyncio.Future
    read: list[str]  # what the model reads of each text (the texts cut to its window): `usage` counts these
    arrived: float = field(default_factory=time.monotonic)
    waiting: bool = True  # counted in the batcher's depth: queued or gathering, not yet in the engine nor cancelled

    @property
    def key(self) -> tuple[str, int]:
        return self.kind, self.k


class Batcher:
    """Queue + one worker task; `submit()` from request handlers, `start()`/`stop()` from the app's lifespan."""

    def __init__(self, embedder, *, max_batch: int = 32, max_wait_ms: float = 5.0, metrics=None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 (texts per engine call), got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.embedder, self.max_batch, self.max_wait = embedder, max_batch, max_wait_ms / 1000
        self.metrics = metrics
        self._jobs: deque[_Job] = deque()
        self._gathering: list[_Job] = []  # taken from the queue, waiting for company
        self._running: list[_Job] = []  # in the engine now
        self._waiting_texts = 0  # the depth, kept as jobs come and go: read per request, summed it cost O(queue)
        self._arrived: asyncio.Event | None = None
        self.on_depth_change = None  # called when texts leave the queue (Admission lets the next in line in)
        self._task: asyncio.Task | None = None
        # One engine thread: the model runs one forward at a time anyway (thinking.model_lock), and one thread
        # keeps the event loop free to accept and queue requests meanwhile.
        self._engine = ThreadPoolExecutor(1, thread_name_prefix="o1-engine")

    @property
    def depth(self) -> int:
        """Texts waiting for the engine: queued, or taken into a batch that is still waiting for company (not those
        of a request already cancelled, whose client left)."""
        return self._waiting_texts

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="o1-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Nothing should be left (uvicorn drains or cancels requests first), but a job queued, gathering or in the
        # engine when the worker stopped would otherwise never resolve: its client would wait forever.
        for job in [*self._jobs, *self._gathering, *self._running]:
            job.waiting = False
            if not job.future.done():
                job.future.set_exception(ShuttingDown("the server is shutting down"))
        self._jobs.clear()
        self._gathering, self._running = [], []  # two lists: one aliased to the other would mix them
        self._waiting_texts = 0
        # Off the event loop: a batch still in the engine finishes while the loop sends the answers already made.
        await asyncio.to_thread(self._engine.shutdown, wait=True)

    async def submit(self, kind: str, texts: list[str], k: int = 0) -> Result:
        """The result for `texts`. Cancelling the caller cancels the job: still queued, it is never computed."""
        return await self.enqueue(kind, texts, k)

    def enqueue(self, kind: str, texts: list[str], k: int = 0, read: list[str] | None = None) -> asyncio.Future:
        """Queue `texts` now; the future gets their Result. Cancelling it cancels the job. `read`: the texts cut to
        what the model reads (`read_window`), for `usage`; default `texts`."""
        check_choice(kind, "kind", KINDS)
        if self._task is None:
            raise RuntimeError("the batcher is not running (start() it inside the event loop first)")
        if self._task.done():
            raise ShuttingDown("the server is shutting down")
        texts = list(texts)
        if read is not None and len(read) != len(texts):
            raise ValueError(f"read holds {len(read)} texts for {len(texts)} texts")
        job = _Job(kind, k, texts, asyncio.get_running_loop().create_future(), texts if read is None else list(read))
        job.future.add_done_callback(lambda _: self._left(job))
        self._jobs.append(job)
        self._waiting_texts += len(job.texts)
        self._arrived.set()
        self._observe_depth()
        return job.future

    def _left(self, job: _Job, observe: bool = True) -> None:
        """`job` is out of the queue: taken into the engine, or cancelled (its client left: the gauge drops now,
        not at the next request)."""
        if job.waiting:
            job.waiting = False
            self._waiting_texts -= len(job.texts)
            if observe:
                self._observe_depth()

    async def read_window(self, kind: str, texts: list[str]) -> list[str]:
        """`texts` cut to what the model reads (see `window.cut`; InputTooLong names an input it refuses). On the
        engine thread: the engine's tokenizers are not safe to call from two threads at once."""
        if not needs_cut(self.embedder, kind, texts):
            return texts
        if self._task is None or self._task.done():
            raise ShuttingDown("the server is shutting down")
        return await asyncio.get_running_loop().run_in_executor(self._engine, cut, self.embedder, kind, texts)

    def _observe_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self.depth)
        if self.on_depth_change is not None:
            self.on_depth_change()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                self._arrived.clear()
                await self._arrived.wait()
            self._gathering = jobs = self._take()
            if not jobs:  # every queued request was cancelled
                continue
            # Wait for company only while the oldest request is younger than max_wait and the batch has room.
            while sum(len(j.texts) for j in jobs) < self.max_batch:
                left = jobs[0].arrived + self.max_wait - time.monotonic()
                if left <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
                jobs += self._take(jobs)
            self._gathering = []
            for job in jobs:
                self._left(job, observe=False)
            self._observe_depth()
            await self._run(loop, jobs)

    def _take(self, taken: list[_Job] | None = None) -> list[_Job]:
        """Pop queued jobs that fit the batch: the oldest first (it sets the kind and k), then, in arrival order,
        every job with the same kind and k while the texts stay within max_batch. Others keep their place."""
        taken = taken or []
        self._jobs = deque(j for j in self._jobs if not j.future.done())  # cancelled: their clients left
        if not self._jobs:
            return []
        key = taken[0].key if taken else self._jobs[0].key
        n = sum(len(j.texts) for j in taken)
        out, kept = [], deque()
        while self._jobs:
            job = self._jobs.popleft()
            # The first job always goes, even alone over max_batch (the engine then chunks it).
            if job.key == key and (not taken and not out or n + len(job.texts) <= self.max_batch):
                out.append(job)
                n += len(job.texts)
            else:
                kept.append(job)
        self._jobs = kept
        return out

    async def _run(self, loop, jobs: list[_Job]) -> None:
        jobs = [j for j in jobs if not j.future.done()]  # a client that went away needs no work
        if not jobs:
            return
        kind, k = jobs[0].key
        texts = [t for j in jobs for t in j.texts]
        read = [t for j in jobs for t in j.read]
        # Set once every request of the batch is gone (its client left, or stop() failed it): thinking then stops
        # at its next decode step instead of running to max_new_tokens for nobody.
        abandoned = threading.Event()

        def check_abandoned(_):
            if all(j.future.done() for j in jobs):
                abandoned.set()
        for job in jobs:
            job.future.add_done_callback(check_abandoned)
        self._running = jobs  # kept when the worker is cancelled mid-call, so that stop() fails them
        try:
            result = await loop.run_in_executor(self._engine, self._compute, kind, k, texts, read, abandoned)
        except Exception as e:  # every request in the batch gets the error; the server keeps serving
            result = e
        self._running = []
        for job in jobs:
            job.future.remove_done_callback(check_abandoned)
        if isinstance(result, Exception):
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(result)
            return
        start = 0
        for j in jobs:
            end = start + len(j.texts)
            part = Result(None if result.embeddings is None else result.embeddings[start:end],
                          None if result.thoughts is None else result.thoughts[start:end], result.tokens[start:end])
            if not j.future.done():
                j.future.set_result(part)
            start = end

    def _compute(self, kind: str, k: int, texts: list[str], read: list[str] | None = None,
                 abandoned: threading.Event | None = None) -> Result:
        """Runs on the engine thread. Raises Abandoned when `abandoned` is set while it thinks."""
        with stop_when(abandoned or threading.Event()):
            return compute(self.embedder, self.metrics, self.max_batch, kind, k, texts,
                           texts if read is None else read)
