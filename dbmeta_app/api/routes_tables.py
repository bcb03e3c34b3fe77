"""Table search: which tables does a request need?"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dbmeta_app.api.deps import json_body, read_body, runtime_of
from dbmeta_app.api.models import ErrorBody, TableSearchRequest, TableSearchResponse
from dbmeta_app.api.routes_schema import json_response
from dbmeta_app.search.runtime import search_tables

router = APIRouter(tags=["tables"])


@router.post(
    "/v1/tables/search",
    response_model=TableSearchResponse,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    openapi_extra=json_body(TableSearchRequest),
)
async def tables_search(request: Request) -> Response:
    """Return the top_k tables for a request, best first, with their scores."""
    body, runtime = await read_body(request, TableSearchRequest), runtime_of(request)
    rt = runtime.profile(body.profile)
    _, result = await search_tables(runtime, rt, body.query, body.top_k)
    answer = {
        "profile": rt.name,
        "tables": [h.to_json() for h in result.hits],
        "degraded": result.degraded,
    }
    if result.reason:
        answer["reason"] = result.reason
    return json_response(answer)
