"""Room in the queue (--max-queue texts waiting for the engine), given out in arrival order.

A request that does not fit waits in line, for up to --queue-wait seconds, and no later request takes the room it
waits for: a large request is not starved by a stream of small ones that would each fit. A request that waited
its bound, or that finds the line itself full, gets a 429 with Retry-After. A request larger than the whole limit
gets in once the queue is empty (its turn comes: everyone after it waits).

A request holds its room from admission until its texts are queued (`queued`); from then on the batcher's queue
counts them, until the engine takes them.
"""
from __future__ import annotations

import asyncio
from collections import deque


class Full(Exception):
    """No room in time (HTTP 429); the message says why."""


class Admission:
    def __init__(self, batcher, max_queue: int, wait_s: float):
        self.batcher, self.max_queue, self.wait_s = batcher, max_queue, wait_s
        self.line: deque[tuple[int, asyncio.Future]] = deque()  # (texts, admitted) per waiting request
        self.admitted = 0  # texts let in but not yet in the batcher's queue (cutting them to the window)
        self.waiting = 0  # texts of the requests waiting in line
        batcher.on_depth_change = self.wake

    @property
    def used(self) -> int:
        return self.batcher.depth + self.admitted

    def _fits(self, n: int) -> bool:
        used = self.used
        return used == 0 or used + n <= self.max_queue

    async def enter(self, n: int) -> None:
        """Returns once `n` texts have room; raises Full after --queue-wait seconds, or at once when the line is
        full. The caller must then call `queued(n)` once its texts are in the batcher, or `leave(n)`."""
        if not self.line and self._fits(n):
            self.admitted += n
            return
        ahead = self.waiting
        if ahead and ahead + n > self.max_queue:
            raise Full(f"{self.used} texts are waiting for the engine and {ahead} more for room")
        admitted = asyncio.get_running_loop().create_future()
        entry = (n, admitted)
        self.line.append(entry)
        self.waiting += n
        try:
            if self.wait_s > 0:
                await asyncio.wait_for(asyncio.shield(admitted), self.wait_s)
        except asyncio.TimeoutError:
            pass
        except BaseException:  # its client left, or the server is stopping
            self._give_up(entry)
            raise
        if not admitted.done():
            self._give_up(entry)
            raise Full(f"{self.used} texts are waiting for the engine; this request waited {self.wait_s:g} s "
                       "(--queue-wait) for room")

    def _give_up(self, entry) -> None:
        n, admitted = entry
        if admitted.done():  # let in just as it gave up: its room goes back
            self.leave(n)
            return
        admitted.cancel()
        self.line.remove(entry)
        self.waiting -= n
        self.wake()  # the next in line may fit where this one did not

    def queued(self, n: int) -> None:
        """The `n` admitted texts are now in the batcher's queue, which counts them from here."""
        self.admitted -= n

    def leave(self, n: int) -> None:
        """The `n` admitted texts will not be queued (the request failed or its client left)."""
        self.admitted -= n
        self.wake()

    def wake(self) -> None:
        """Let in, in order, the waiting requests that now fit (one that gave up has left the line)."""
        while self.line and self._fits(self.line[0][0]):
            n, admitted = self.line.popleft()
            self.waiting -= n
            self.admitted += n
            admitted.set_result(None)
