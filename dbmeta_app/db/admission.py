"""A bound on concurrent database work for one profile, with a short queue and a prompt "busy".

One per profile (on its runtime), shared by preflight EXPLAINs (async callers) and sample reads (worker
threads): at most ``slots`` run at once, at most ``queue`` more wait, each at most ``wait`` seconds, served
in arrival order. Anything beyond is told at once that the profile is busy, instead of waiting for a pooled
connection and failing after the pool's timeout. Profiles do not share slots, so one profile's flood
cannot delay another's preflight.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator

__all__ = ["Admission"]


class _Waiter:
    """Someone queued for a slot: an asyncio future on its loop, or a thread's event."""

    __slots__ = ("event", "future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] | None = loop.create_future() if loop is not None else None
        self.event = threading.Event() if loop is None else None

    def hand_over(self) -> bool:
        """Give this waiter the slot being released; False when it can no longer take it."""
        if self.event is not None:
            self.event.set()
            return True
        assert self.loop is not None and self.future is not None
        if self.loop.is_closed():
            return False
        self.loop.call_soon_threadsafe(_resolve, self.future)
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Admission:
    """Slots for database work: ``slots`` at once, ``queue`` waiting at most ``wait`` seconds (FIFO)."""

    def __init__(self, slots: int, queue: int, wait: float) -> None:
        self.slots = slots
        self.queue = queue
        self.wait = wait
        self._lock = threading.Lock()
        self._free = slots
        self._waiters: deque[_Waiter] = deque()

    @property
    def busy(self) -> int:
        """How many slots are taken now."""
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _take_or_queue(self, waiter: _Waiter | None) -> bool | None:
        """Take a free slot (True), or queue `waiter` (None), or refuse because the queue is full (False)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        if waiter is None or len(self._waiters) >= self.queue:
            return False
        self._waiters.append(waiter)
        return None

    async def enter(self) -> bool:
        """Take a slot (waiting in the queue if there is room): True when admitted, False when busy."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop)
        with self._lock:
            taken = self._take_or_queue(waiter if self.wait > 0 else None)
        if taken is not None:
            return taken
        assert waiter.future is not None
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self.wait)
            return True
        except TimeoutError:
            if self._withdraw(waiter):
                return False
            await waiter.future  # the slot was handed over just as the wait ran out: take it
            return True
        except asyncio.CancelledError:
            if not self._withdraw(waiter):
                self.release()  # handed over, but nobody is left to use it
            raise

    def enter_blocking(self) -> bool:
        """Like :meth:`enter`, for worker threads."""
        waiter = _Waiter(None)
        with self._lock:
            taken = self._take_or_queue(waiter if self.wait > 0 else None)
        if taken is not None:
            return taken
        assert waiter.event is not None
        # Not handed a slot in time: leave the queue, unless the slot arrived just as the wait ran out.
        return waiter.event.wait(self.wait) or not self._withdraw(waiter)

    def _withdraw(self, waiter: _Waiter) -> bool:
        """Leave the queue; False when the slot was already handed over (the caller holds it)."""
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return False
            return True

    def release(self) -> None:
        """Give a slot back: to the first waiter still waiting, else to the pool of free slots."""
        with self._lock:
            while self._waiters:
                if self._waiters.popleft().hand_over():
                    return
            self._free += 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[bool]:
        """``async with admission.slot() as admitted:``; the slot (if any) is released on exit."""
        admitted = await self.enter()
        try:
            yield admitted
        finally:
            if admitted:
                self.release()

    @contextlib.contextmanager
    def slot_blocking(self) -> Iterator[bool]:
        """``with admission.slot_blocking() as admitted:`` in a worker thread."""
        admitted = self.enter_blocking()
        try:
            yield admitted
        finally:
            if admitted:
                self.release()
