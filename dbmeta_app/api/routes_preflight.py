"""EXPLAIN preflight of candidate SQL."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dbmeta_app.api.deps import DOMAIN_ERRORS, json_body, read_body, runtime_of
from dbmeta_app.api.models import PreflightRequest, PreflightResponse
from dbmeta_app.items.preflight import preflight_reply

router = APIRouter(tags=["preflight"])


@router.post(
    "/v1/preflight",
    operation_id="preflightSql",
    response_model=PreflightResponse,
    responses=DOMAIN_ERRORS,
    openapi_extra=json_body(PreflightRequest),
)
async def preflight_sql(request: Request) -> Response:
    """Tell whether SQL is safe and valid, and how expensive it is, without running it.

    A verdict, always 200: also ``busy`` (the profile's EXPLAINs are at their bound), with ``Retry-After``.
    """
    body, runtime = await read_body(request, PreflightRequest), runtime_of(request)
    rt = runtime.profile(body.profile)
    reply = await preflight_reply(runtime.settings, runtime.cache, rt, body.sql)
    headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else None
    return Response(reply.body, media_type="application/json", headers=headers)
