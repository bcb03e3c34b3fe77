"""Stopping background tasks at shutdown, even those whose library call swallowed a cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Final

log = logging.getLogger(__name__)

#: Seconds shutdown waits for one part (background tasks, table search, the cache) before it goes on.
SHUTDOWN_GRACE: Final = 3.0
#: A task asked to stop that still runs after this many seconds is asked again.
_RECANCEL_INTERVAL: Final = 0.2


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], what: str, grace: float = SHUTDOWN_GRACE) -> None:
    """Cancel the tasks and wait for them, cancelling again any that swallowed it (redis-py's pipeline may),
    for at most ``grace`` seconds; then log the ones left behind and return."""
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    pending = {task for task in tasks if not task.done()}
    while pending:
        left = deadline - loop.time()
        if left <= 0:
            log.warning(
                "Stopping without waiting for %s tasks: %s", what, ", ".join(t.get_name() for t in pending)
            )
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(_RECANCEL_INTERVAL, left))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a failure of background work at shutdown is no error of its own
