"""EXPLAIN preflight of candidate SQL."""

from __future__ import annotations

from fastapi import APIRouter, Response

from dbmeta_app.api.deps import RuntimeDep
from dbmeta_app.api.models import ErrorBody, PreflightRequest, PreflightResponse
from dbmeta_app.prompt_items.preflight import preflight

router = APIRouter(tags=["preflight"])


@router.post(
    "/v1/preflight",
    response_model=PreflightResponse,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def preflight_sql(body: PreflightRequest, runtime: RuntimeDep) -> Response:
    """Tell whether SQL is safe and valid, and how expensive it is, without running it."""
    rt = runtime.profile(body.profile)
    return Response(
        await preflight(runtime.settings, runtime.cache, rt, body.sql), media_type="application/json"
    )
