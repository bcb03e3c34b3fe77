"""The per-process runtime: ``open_runtime`` builds and closes everything a process holds.

Settings, the cache, one ``ProfileRuntime`` per profile (engines, memos), table search, background tasks:
the app lifespan, the CLI, the benches and the tests open it the same way (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from threadpoolctl import threadpool_limits

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Settings
from dbmeta_app.errors import DbmetaError
from dbmeta_app.examples.instructions import get_instructions
from dbmeta_app.examples.query_examples import ExampleCheck, example_layers, load_examples
from dbmeta_app.ownership import Anchor, anchor_path, lite_path, served_identities
from dbmeta_app.profiles import ProfileRuntime, open_profile
from dbmeta_app.schema.store import check_drift
from dbmeta_app.search.runtime import SearchRuntime
from dbmeta_app.tasks import SHUTDOWN_GRACE, stop_tasks

log = logging.getLogger(__name__)

#: Seconds a thread that wants the GIL waits before it asks the holder to give it up (Python's default: 5 ms).
GIL_SWITCH_INTERVAL = 0.0005


@dataclass
class Runtime:
    """Everything a request needs, held on ``app.state.runtime``."""

    settings: Settings
    cache: RedisCache
    profiles: dict[str, ProfileRuntime]
    #: Called with (profile runtime, drift result) when a profile's schema changed.
    schema_listeners: list[Callable[[ProfileRuntime, dict[str, Any]], Awaitable[None]]] = field(
        default_factory=list
    )
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    search: SearchRuntime | None = None  # table search (None: keyword ranking only)
    anchor: Anchor | None = None  # this process's claim on the local index, or how it finds the owner
    http_url: str | None = None  # where this process serves HTTP, once known (published to the CLI)
    #: Example fit checks made in process (per examples version) when the example index does not hold them.
    example_checks: dict[str, dict[str, ExampleCheck]] = field(default_factory=dict)

    def profile(self, name: str | None) -> ProfileRuntime:
        """Return the named profile's runtime (default when None) or raise UnknownProfileError."""
        found = self.profiles.get(name or self.settings.default_profile)
        return found if found is not None else self.profiles[self.settings.profile(name).name]

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background task for the life of the runtime."""
        self.tasks.append(asyncio.create_task(coro, name=name))

    async def close(self) -> None:
        """Stop the background work, then release everything; never waits long on work that will not stop.

        Shutdown may begin at any point of start-up (a busy port, a signal): a task still in a library call
        that swallows its cancellation (redis-py's pipeline does) is asked again (``tasks.stop_tasks``), and
        after ``SHUTDOWN_GRACE`` seconds it is left behind, so the resources are released and the process exits.
        """
        await stop_tasks(self.tasks, "runtime")
        if self.search is not None:
            try:
                await asyncio.wait_for(self.search.close(), SHUTDOWN_GRACE)
            except TimeoutError:
                log.warning("Table search did not close within %.0fs: going on without it", SHUTDOWN_GRACE)
        for rt in self.profiles.values():
            rt.dispose()
        if self.anchor is not None:
            self.anchor.release()
        try:
            await asyncio.wait_for(self.cache.close(), SHUTDOWN_GRACE)
        except TimeoutError:
            log.warning("The cache did not close within %.0fs: going on without it", SHUTDOWN_GRACE)


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, cache: RedisCache | None = None, serve: bool = False, search: bool | None = None
) -> AsyncIterator[Runtime]:
    """Build everything a process holds and close it on exit: the one context of the app, CLI, benches, tests.

    Every profile is opened (nothing connects yet). ``serve``: the service's start-up too — the anchor
    the CLI finds the server by, the cache's listener, the index builder, the drift watcher, the privilege
    log and the process tuning. ``search``: open table search (default: in the service when
    ``SEARCH_BACKEND=milvus``); outside the service it indexes nothing by itself.
    """
    runtime = Runtime(
        settings=settings,
        cache=cache if cache is not None else RedisCache(settings),
        profiles={name: open_profile(p, settings) for name, p in settings.profiles.items()},
    )
    try:
        check_curated_files(runtime)
        if serve:
            await _start_service(runtime)
        if search if search is not None else serve and settings.search_backend == "milvus":
            runtime.search = SearchRuntime(runtime)
            if serve:
                runtime.schema_listeners.append(runtime.search.on_schema_change)
            await runtime.search.start(background=serve)
            limit_blas_threads()
        if serve:
            if settings.schema_check_interval > 0:
                runtime.spawn(watch_drift(runtime), "dbmeta-drift-watcher")
            runtime.spawn(log_privileges(runtime), "dbmeta-privileges")
            # What start-up built lives as long as the process: keep the collector from rescanning it.
            gc.freeze()
        yield runtime
    finally:
        await runtime.close()


def check_curated_files(runtime: Runtime) -> None:
    """Read every curated file of every profile once (examples packs, instructions; descriptions are read as
    a profile opens): a bad one is a ConfigError naming it when the process starts, as a bad variable is,
    not on each request. The profiles' loaders keep what they read; an edit is read again when used."""
    for rt in runtime.profiles.values():
        load_examples(example_layers(runtime.settings, rt), rt.files)
        get_instructions(runtime.settings, rt)


async def _start_service(runtime: Runtime) -> None:
    settings = runtime.settings
    # Work in worker threads (introspection, decoding a large snapshot) holds the GIL; the event loop
    # waits at most this long for it, not Python's 5 ms. Measured with a 1,000-table schema re-read every
    # 2 s (bench/refresh_ahead.py --realtime --drift): p99 6.10 -> 1.13 ms, slowest 20.3 -> 4.3 ms.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    # The CLI on this DATA_DIR finds the server through this anchor (see ownership.py). A Milvus Lite
    # file is claimed when search opens it; otherwise the claim only tells the CLI where we serve.
    runtime.anchor = Anchor(anchor_path(settings), kind="server", served=served_identities(settings))
    if lite_path(settings) is None:
        try:
            runtime.anchor.claim()
        except OSError as exc:  # e.g. a read-only DATA_DIR: the service runs, the CLI cannot find it
            log.warning(
                "Cannot write beside %s (%s): the CLI will not find this server", runtime.anchor.path, exc
            )
    await runtime.cache.start()


def limit_blas_threads() -> None:
    """numpy's BLAS (the index mirror's products) keeps its threads spinning after each product; on a
    small machine they starve the model's threads (measured: embedding a request took 24 ms, not 16).
    Called once the model is loaded, so the libraries it brought are limited too."""
    threadpool_limits(1, user_api="blas")


# ---- background work of the service ---------------------------------------------------------------


async def check_profile(runtime: Runtime, rt: ProfileRuntime) -> dict[str, Any]:
    """Check one profile for drift and tell the schema listeners (e.g. the search index) about a change."""
    result = await check_drift(runtime.settings, runtime.cache, rt)
    if result["status"] == "changed":
        for listener in runtime.schema_listeners:
            try:
                await listener(rt, result)
            except Exception:  # a listener's failure must not stop the watcher
                log.exception("Schema change listener failed for profile=%s", rt.name)
    return result


async def watch_drift(runtime: Runtime) -> None:
    """Every SCHEMA_CHECK_INTERVAL seconds, check every profile whose snapshot is cached."""
    interval = runtime.settings.schema_check_interval
    while True:
        await asyncio.sleep(interval)
        for rt in list(runtime.profiles.values()):
            try:
                await check_profile(runtime, rt)
            except DbmetaError as exc:
                log.info("Drift check of profile=%s skipped: %s", rt.name, exc.detail)
            except Exception as exc:  # noqa: BLE001 - a database that is down now is checked again next time
                log.info("Drift check of profile=%s failed: %s", rt.name, type(exc).__name__)


async def log_privileges(runtime: Runtime) -> None:
    """Inspect each profile's database role once and log what it can do beyond reading; and warn of each
    schema its include_schemas/exclude_schemas names that the database does not have."""
    for rt in list(runtime.profiles.values()):
        for warning in await anyio.to_thread.run_sync(rt.schema_names.report, rt.profile, rt.engine) or ():
            log.warning("Profile=%s: %s", rt.name, warning)
        report = await anyio.to_thread.run_sync(rt.privileges.report, rt.engine)
        if not report.checked:
            log.info("Privileges of profile=%s not checked: %s", rt.name, report.error)
        elif report.problems:
            # The bundled sample warehouse is the service's own file: worth a line, not a warning.
            log.log(
                logging.INFO if rt.profile.sample else logging.WARNING,
                "The database role of profile=%s can do more than a metadata service needs: %s "
                "(see docs/SECURITY.md%s)",
                rt.name,
                "; ".join(report.problems),
                ""
                if rt.profile.preflight.require_least_privilege
                else "; preflight.require_least_privilege enforces it",
            )
        else:
            log.info("The database role of profile=%s is read-only (least privilege)", rt.name)
