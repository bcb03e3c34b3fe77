"""Operations: cache statistics (public) and admin actions behind a bearer token (ADMIN_TOKEN)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from dbmeta_app.api.deps import RuntimeDep
from dbmeta_app.api.models import ErrorBody
from dbmeta_app.cache.keys import SCOPED_KINDS
from dbmeta_app.errors import DbmetaError
from dbmeta_app.prompt_items.db_struct import load_snapshot
from dbmeta_app.runtime import ProfileRuntime, Runtime
from dbmeta_app.tasks import check_profile

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
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise UnauthorizedError("missing bearer token (Authorization: Bearer <ADMIN_TOKEN>)")
    if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise ForbiddenError("wrong admin token")


AdminDep = Annotated[None, Depends(require_admin)]
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    413: {"model": ErrorBody},
}


class ProfileSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str | None = Field(
        default=None, max_length=128, description="One profile; every profile when null"
    )


class InvalidateRequest(ProfileSelection):
    kind: Literal["schema", "explain", "examples", "all"] = "all"


def _selected(runtime: Runtime, profile: str | None) -> list[ProfileRuntime]:
    return [runtime.profile(profile)] if profile is not None else list(runtime.profiles.values())


@router.get("/v1/cache/stats")
async def cache_stats(runtime: RuntimeDep) -> dict[str, Any]:
    """Report this replica's cache: backend, L1 size, hits, misses, errors and hit ratio by kind."""
    return runtime.cache.stats_json()


@router.post("/v1/admin/cache/invalidate", responses=ADMIN_ERRORS)
async def invalidate(body: InvalidateRequest, runtime: RuntimeDep, _: AdminDep) -> dict[str, Any]:
    """Drop cached values of a profile (or all profiles), by kind, in Redis and every replica's L1."""
    kinds = SCOPED_KINDS if body.kind == "all" else (body.kind,)
    dropped: dict[str, int] = {}
    for rt in _selected(runtime, body.profile):
        for kind, count in (await runtime.cache.drop_scope(rt.scope, kinds)).items():
            dropped[f"{rt.name}/{kind}"] = count
    return {"dropped": dropped}


@router.post("/v1/admin/cache/warm", responses=ADMIN_ERRORS)
async def warm(body: ProfileSelection, runtime: RuntimeDep, _: AdminDep) -> dict[str, Any]:
    """Load (introspecting if needed) the full snapshot of a profile, or of every profile."""
    out = {}
    for rt in _selected(runtime, body.profile):
        snapshot, status = await load_snapshot(runtime.settings, runtime.cache, rt)
        out[rt.name] = {"cache": status, "schema_version": snapshot.version, "tables": len(snapshot.tables)}
    return {"profiles": out}


@router.post("/v1/admin/schema/check", responses=ADMIN_ERRORS)
async def schema_check(body: ProfileSelection, runtime: RuntimeDep, _: AdminDep) -> dict[str, Any]:
    """Compare cached snapshots with the databases now (drift check on demand)."""
    return {"profiles": [await check_profile(runtime, rt) for rt in _selected(runtime, body.profile)]}
