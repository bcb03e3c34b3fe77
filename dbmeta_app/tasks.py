"""Background work of the service process: the schema drift watcher, the start-up privilege check."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio

from dbmeta_app.errors import DbmetaError
from dbmeta_app.items.db_struct import check_drift
from dbmeta_app.runtime import ProfileRuntime, Runtime

log = logging.getLogger(__name__)


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
    """Inspect each profile's database role once and log what it can do beyond reading."""
    for rt in list(runtime.profiles.values()):
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
