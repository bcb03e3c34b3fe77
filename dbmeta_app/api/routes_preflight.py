"""EXPLAIN preflight of candidate SQL."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dbmeta_app.api.deps import json_body, read_body, runtime_of
from dbmeta_app.api.models import ErrorBody, PreflightRequest, PreflightResponse
from dbmeta_app.prompt_items.preflight import preflight

router = APIRouter(tags=["preflight"])


@router.post(
    "/v1/preflight",
    response_model=PreflightResponse,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    openapi_extra=json_body(PreflightRequest),
)
async def preflight_sql(request: Request) -> Response:
    """Tell whether SQL is safe and valid, and how expensive it is, without running it."""
    body, runtime = await read_body(request, PreflightRequest), runtime_of(request)
    rt = runtime.profile(body.profile)
    return Response(
        await preflight(runtime.settings, runtime.cache, rt, body.sql), media_type="application/json"
    )
