"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
import os
from typing import Annotated, Any

import anyio
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from dbmeta_app.api.announce import ANCHOR_HEADER, anchor_digest
from dbmeta_app.api.deps import RuntimeDep
from dbmeta_app.api.models import ErrorBody, HealthBody, ReadyBody
from dbmeta_app.api.security import authorized
from dbmeta_app.metrics import exposition
from dbmeta_app.profiles import ProfileRuntime

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

READY_DB_TIMEOUT_S = 3.0


def _ping_database(rt: ProfileRuntime) -> None:
    with rt.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def _schema_names(rt: ProfileRuntime) -> dict[str, Any]:
    """A profile's include/exclude_schemas names that its database lacks (refreshed in the background)."""
    rt.schema_names.refresh_in_background(rt.profile, rt.engine)
    warnings = rt.schema_names.warnings
    return {"checked": warnings is not None, "warnings": warnings or []}


def _privileges(rt: ProfileRuntime) -> dict[str, Any]:
    """The latest privilege report of a profile; a stale one is refreshed in the background (never awaited)."""
    rt.privileges.refresh_in_background(rt.engine)
    report = rt.privileges.last
    return (
        report.to_json() if report is not None else {"least_privilege": None, "problems": [], "pending": True}
    )


@router.get("/healthz", operation_id="getHealth", response_model=HealthBody)
async def healthz(request: Request) -> JSONResponse:
    """Answer while the process is alive."""
    runtime = getattr(request.app.state, "runtime", None)
    anchor = getattr(runtime, "anchor", None)
    # Names the local index this process belongs to: how a server recognises its own socket (announce.py).
    headers = {ANCHOR_HEADER: anchor_digest(anchor.path)} if anchor is not None else None
    return JSONResponse({"status": "ok"}, headers=headers)


@router.get(
    "/readyz",
    operation_id="getReadiness",
    response_model=ReadyBody,
    responses={
        503: {"model": ReadyBody, "description": "Not ready: the database is down or search is degraded"},
        422: {"model": ErrorBody, "description": "Malformed query parameter"},
    },
)
async def readyz(
    request: Request,
    runtime: RuntimeDep,
    allow_degraded: Annotated[
        bool,
        Query(description="200 once start-up indexing is over even if some answers are degraded (for k8s)"),
    ] = False,
) -> JSONResponse:
    """Report whether answers can be trusted: 503 while the default database is down or search is degraded.

    Degraded means some table or example search would fall back to keyword ranking: an index is missing,
    still being built, or failing. ``allow_degraded=true`` is what a load balancer needs: a pod that is
    still building its indexes gets no traffic, but once start-up is over a degraded pod keeps serving
    (degraded answers beat none when every replica shares a failing Milvus).
    """
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
    search = runtime.search.state() if runtime.search is not None else {"backend": "keyword", "ready": True}
    checks["search"] = search
    # What each profile's database role can do beyond reading: reported, never blocking readiness.
    checks["privileges"] = {name: _privileges(profile) for name, profile in runtime.profiles.items()}
    # Schemas a profile names that its database does not have (a typo, the wrong case): reported, never
    # blocking readiness; the profile serves the schemas it does find.
    checks["schemas"] = {name: _schema_names(profile) for name, profile in runtime.profiles.items()}
    degraded = not search["ready"]
    if degraded and not (allow_degraded and not search.get("warming")):
        ready = False
    if not authorized(runtime, request.headers):
        # with API_TOKEN set, an anonymous probe learns whether to send traffic, not the roles' rights, the
        # schema names or the data paths
        checks = {
            "database": {"ok": checks["database"]["ok"]},
            "cache": {"redis_ok": redis_ok},
            "search": {"ready": search["ready"]},
        }
    body = {"ready": ready, "degraded": degraded, "checks": checks, "pid": os.getpid()}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    operation_id="getMetrics",
    response_class=Response,
    responses={
        200: {
            "description": "The metrics, in the Prometheus text format (OpenMetrics when asked for)",
            "content": {
                "text/plain; version=0.0.4": {"schema": {"type": "string"}},
                "application/openmetrics-text; version=1.0.0": {"schema": {"type": "string"}},
            },
        }
    },
)
async def metrics(request: Request) -> Response:
    """Export Prometheus metrics (OpenMetrics when ``Accept: application/openmetrics-text``)."""
    body, content_type = exposition(request.headers.get("accept", ""))
    return Response(body, headers={"content-type": content_type})
