"""The per-profile concurrency bound: at most N at once, a short FIFO queue, and a prompt "busy" beyond."""

from __future__ import annotations

import asyncio
import threading
import time

from dbmeta_app.db.admission import Admission


async def test_beyond_the_slots_and_the_queue_the_answer_is_busy_at_once() -> None:
    admission = Admission(slots=2, queue=1, wait=5.0)
    assert await admission.enter() and await admission.enter()
    waiter = asyncio.create_task(admission.enter())
    await asyncio.sleep(0.01)
    assert admission.waiting == 1
    started = time.perf_counter()
    assert await admission.enter() is False  # the queue is full: no wait at all
    assert time.perf_counter() - started < 0.05
    admission.release()
    assert await waiter is True
    assert admission.busy == 2


async def test_a_queued_caller_gives_up_after_the_wait() -> None:
    admission = Admission(slots=1, queue=5, wait=0.1)
    assert await admission.enter()
    started = time.perf_counter()
    assert await admission.enter() is False
    assert 0.09 < time.perf_counter() - started < 1.0
    assert admission.waiting == 0
    admission.release()
    assert admission.busy == 0


async def test_waiters_are_served_in_arrival_order() -> None:
    admission = Admission(slots=1, queue=10, wait=5.0)
    assert await admission.enter()
    order: list[int] = []

    async def wait(i: int) -> None:
        assert await admission.enter()
        order.append(i)
        admission.release()

    tasks = [asyncio.create_task(wait(i)) for i in range(5)]
    await asyncio.sleep(0.01)
    admission.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4] and admission.busy == 0


async def test_a_cancelled_waiter_never_keeps_a_slot() -> None:
    admission = Admission(slots=1, queue=2, wait=5.0)
    assert await admission.enter()
    waiter = asyncio.create_task(admission.enter())
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.sleep(0.01)
    admission.release()
    assert admission.busy == 0 and admission.waiting == 0
    async with admission.slot() as admitted:
        assert admitted and admission.busy == 1
    assert admission.busy == 0


async def test_threads_and_the_event_loop_share_the_same_slots() -> None:
    admission = Admission(slots=1, queue=2, wait=2.0)
    entered = threading.Event()
    leave = threading.Event()

    def worker() -> None:
        with admission.slot_blocking() as admitted:
            assert admitted
            entered.set()
            leave.wait(5)

    thread = threading.Thread(target=worker)
    thread.start()
    assert entered.wait(5)
    waiting = asyncio.create_task(admission.enter())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    leave.set()  # the thread's release hands the slot to the coroutine, across threads
    assert await asyncio.wait_for(waiting, 5) is True
    thread.join(5)
    admission.release()
    assert admission.busy == 0


def test_a_thread_over_the_bound_is_told_busy() -> None:
    admission = Admission(slots=1, queue=0, wait=1.0)
    assert admission.enter_blocking()
    assert admission.enter_blocking() is False
    admission.release()
    assert admission.enter_blocking()
