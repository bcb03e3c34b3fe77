"""Operations: cache statistics (public) and admin actions behind a bearer token (ADMIN_TOKEN)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dbmeta_app.api.deps import RuntimeDep
from dbmeta_app.api.models import (
    CacheStats,
    ErrorBody,
    InvalidateResponse,
    SchemaCheckResponse,
    WarmResponse,
)
from dbmeta_app.api.security import bearer, token_accepted
from dbmeta_app.cache.keys import SCOPED_KINDS
from dbmeta_app.errors import DbmetaError
from dbmeta_app.profiles import ProfileRuntime
from dbmeta_app.runtime import Runtime, check_profile
from dbmeta_app.schema.store import load_snapshot

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


class AdminDisabledError(DbmetaError):
    code = "admin_disabled"
    status_code = 404


class UnauthorizedError(DbmetaError):
    code = "unauthorized"
    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 - a constant


class ForbiddenError(DbmetaError):
    code = "forbidden"
    status_code = 403


async def require_admin(request: Request, runtime: RuntimeDep) -> None:
    """Let the request through only with ``Authorization: Bearer <ADMIN_TOKEN>``."""
    token = runtime.settings.admin_token
    if token is None:
        raise AdminDisabledError("admin endpoints are off: set ADMIN_TOKEN to enable them")
    given = bearer(request.headers)
    if given is None:
        raise UnauthorizedError("missing bearer token (Authorization: Bearer <ADMIN_TOKEN>)")
    if not token_accepted(given, [token.get_secret_value()]):
        raise ForbiddenError("wrong admin token")


AdminDep = Annotated[None, Depends(require_admin)]


class NoIndexError(DbmetaError):
    code = "no_index"
    status_code = 409


async def require_indexer(request: Request, runtime: RuntimeDep) -> None:
    """Let an index or cache-clear request through with ADMIN_TOKEN, or with the local token of the index owner.

    The local token is in the owner record beside the Milvus Lite file (mode 0600): a CLI run by the same
    user on the same DATA_DIR reads it there, nobody else can.
    """
    given = bearer(request.headers)
    if given is None:
        raise UnauthorizedError(
            "missing bearer token: ADMIN_TOKEN, or the local token the dbmeta CLI reads beside the index"
        )
    accepted = [runtime.settings.admin_token.get_secret_value()] if runtime.settings.admin_token else []
    owner = runtime.anchor.owner() if runtime.anchor is not None else None
    if owner is not None:
        accepted.append(owner.token)
    if not token_accepted(given, accepted):
        raise ForbiddenError("wrong token for index and cache-clear requests")


IndexerDep = Annotated[None, Depends(require_indexer)]
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No bearer token"},
    403: {"model": ErrorBody, "description": "Wrong token"},
    404: {"model": ErrorBody, "description": "Admin routes are off (no ADMIN_TOKEN), or an unknown profile"},
    422: {"model": ErrorBody, "description": "Malformed request"},
    503: {"model": ErrorBody, "description": "A database or the search index is unavailable"},
}


class ProfileSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str | None = Field(
        default=None, max_length=128, description="One profile; every profile when null"
    )


class InvalidateRequest(ProfileSelection):
    kind: Literal["schema", "explain", "examples", "all"] = "all"


class IndexRequest(ProfileSelection):
    rebuild: bool = Field(default=False, description="Re-embed everything into a new collection")


#: Seconds between two progress lines of one profile (the last one is always sent).
PROGRESS_EVERY = 0.1


def _selected(runtime: Runtime, profile: str | None) -> list[ProfileRuntime]:
    return [runtime.profile(profile)] if profile is not None else list(runtime.profiles.values())


@router.get("/v1/cache/stats", operation_id="getCacheStats", response_model=CacheStats)
async def cache_stats(runtime: RuntimeDep) -> dict[str, Any]:
    """Report this replica's cache: backend, L1 size, hits, misses, errors and hit ratio by kind."""
    return runtime.cache.stats_json()


@router.post(
    "/v1/admin/cache/invalidate",
    operation_id="invalidateCache",
    response_model=InvalidateResponse,
    responses=ADMIN_ERRORS,
)
async def invalidate(body: InvalidateRequest, runtime: RuntimeDep, _: IndexerDep) -> dict[str, Any]:
    """Drop cached values of a profile (or all profiles), by kind, in Redis and every replica's L1.

    Like an index request, also with the local token of the index owner (``dbmeta cache clear`` beside it).
    """
    kinds = SCOPED_KINDS if body.kind == "all" else (body.kind,)
    dropped: dict[str, int] = {}
    for rt in _selected(runtime, body.profile):
        for kind, count in (await runtime.cache.drop_scope(rt.scope, kinds)).items():
            dropped[f"{rt.name}/{kind}"] = count
    return {"dropped": dropped}


@router.post(
    "/v1/admin/cache/warm", operation_id="warmCache", response_model=WarmResponse, responses=ADMIN_ERRORS
)
async def warm(body: ProfileSelection, runtime: RuntimeDep, _: AdminDep) -> dict[str, Any]:
    """Load (introspecting if needed) the full snapshot of a profile, or of every profile."""
    out = {}
    for rt in _selected(runtime, body.profile):
        snapshot, status = await load_snapshot(runtime.settings, runtime.cache, rt)
        out[rt.name] = {
            "cache": status,
            "schema_version": snapshot.schema_version,
            "tables": len(snapshot.tables),
        }
    return {"profiles": out}


@router.post(
    "/v1/admin/schema/check",
    operation_id="checkSchema",
    response_model=SchemaCheckResponse,
    responses=ADMIN_ERRORS,
)
async def schema_check(body: ProfileSelection, runtime: RuntimeDep, _: AdminDep) -> dict[str, Any]:
    """Compare cached snapshots with the databases now (drift check on demand)."""
    return {"profiles": [await check_profile(runtime, rt) for rt in _selected(runtime, body.profile)]}


@router.post(
    "/v1/admin/index",
    operation_id="buildIndex",
    responses={
        **ADMIN_ERRORS,
        200: {
            "description": "One JSON object a line (NDJSON), until done or error",
            "content": {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/IndexEvent"}}},
        },
        409: {"model": ErrorBody, "description": "This server has no index (SEARCH_BACKEND=keyword)"},
    },
    response_class=StreamingResponse,
)
async def index(body: IndexRequest, runtime: RuntimeDep, _: IndexerDep) -> StreamingResponse:
    """Build or refresh the table and example index of a profile (every profile when null), as NDJSON.

    Lines: ``{"event": "start"|"progress"|"done"|"error", "profile": ...}``; progress has ``done`` and
    ``total`` (texts embedded), done has the ``report``, error has ``error`` and ``detail`` and ends the
    stream. The work goes on if the client goes away.
    """
    search = runtime.search
    if search is None:
        raise NoIndexError(
            "this server uses keyword search (SEARCH_BACKEND=keyword): there is no index to build"
        )
    targets = _selected(runtime, body.profile)
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def progress_of(profile: str) -> Callable[[int, int], None]:
        last = 0.0

        def progress(done: int, total: int) -> None:  # called from the build thread
            nonlocal last
            now = time.monotonic()
            if done >= total or now - last >= PROGRESS_EVERY:
                last = now
                event = {"event": "progress", "profile": profile, "done": done, "total": total}
                loop.call_soon_threadsafe(events.put_nowait, event)

        return progress

    async def work() -> None:
        try:
            for rt in targets:
                events.put_nowait({"event": "start", "profile": rt.name})
                try:
                    report = await search.index_profile(
                        rt, rebuild=body.rebuild, progress=progress_of(rt.name)
                    )
                except DbmetaError as exc:
                    events.put_nowait(
                        {"event": "error", "profile": rt.name, "error": exc.code, "detail": exc.detail}
                    )
                    return
                except Exception as exc:  # the stream has begun: the error is its last line
                    log.exception("Index request for profile=%s failed", rt.name)
                    events.put_nowait(
                        {
                            "event": "error",
                            "profile": rt.name,
                            "error": "internal_error",
                            "detail": type(exc).__name__,
                        }
                    )
                    return
                events.put_nowait({"event": "done", "profile": rt.name, "report": report})
        finally:
            events.put_nowait(None)

    runtime.spawn(work(), "dbmeta-index-request")

    async def lines() -> AsyncIterator[bytes]:
        while (event := await events.get()) is not None:
            yield orjson.dumps(event) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
