"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import sqlalchemy as sa
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dbmeta_app.api.deps import RuntimeDep
from dbmeta_app.api.models import HealthBody, ReadyBody
from dbmeta_app.runtime import ProfileRuntime

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

READY_DB_TIMEOUT_S = 3.0


def _ping_database(rt: ProfileRuntime) -> None:
    with rt.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def _privileges(rt: ProfileRuntime) -> dict[str, Any]:
    """The latest privilege report of a profile; a stale one is refreshed in the background (never awaited)."""
    rt.privileges.refresh_in_background(rt.engine)
    report = rt.privileges.last
    return (
        report.to_json() if report is not None else {"least_privilege": None, "problems": [], "pending": True}
    )


@router.get("/healthz", response_model=HealthBody)
async def healthz() -> dict[str, str]:
    """Answer while the process is alive."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyBody, responses={503: {"model": ReadyBody}})
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Report whether the dependencies answer: 503 when the default profile's database does not."""
    rt = runtime.profile(None)
    checks: dict[str, Any] = {}
    ready = True
    try:
        with anyio.fail_after(READY_DB_TIMEOUT_S):
            await anyio.to_thread.run_sync(_ping_database, rt, abandon_on_cancel=True)
        checks["database"] = {"profile": rt.name, "ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
        ready = False
        checks["database"] = {"profile": rt.name, "ok": False, "error": type(exc).__name__}
    redis_ok = await runtime.cache.ping()
    # Redis is optional (the in-process cache takes over), so it is reported but never blocks readiness.
    checks["cache"] = {"backend": runtime.cache.backend, "redis_ok": redis_ok}
    # Search degrades to keyword ranking while an index is missing, so it never blocks readiness either.
    checks["search"] = runtime.search.state() if runtime.search is not None else {"backend": "keyword"}
    # What each profile's database role can do beyond reading: reported, never blocking readiness.
    checks["privileges"] = {name: _privileges(profile) for name, profile in runtime.profiles.items()}
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Export Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
