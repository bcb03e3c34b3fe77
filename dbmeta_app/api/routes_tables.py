"""Table search: which tables does a request need?"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dbmeta_app.api.deps import DOMAIN_ERRORS, json_body, read_body, runtime_of
from dbmeta_app.api.models import TableSearchRequest, TableSearchResponse
from dbmeta_app.api.routes_schema import json_response
from dbmeta_app.search.runtime import search_tables

router = APIRouter(tags=["tables"])


@router.post(
    "/v1/tables/search",
    operation_id="searchTables",
    response_model=TableSearchResponse,
    responses=DOMAIN_ERRORS,
    openapi_extra=json_body(TableSearchRequest),
)
async def tables_search(request: Request) -> Response:
    """Return the top_k tables for a request, best first, with their scores."""
    body, runtime = await read_body(request, TableSearchRequest), runtime_of(request)
    rt = runtime.profile(body.profile)
    _, result = await search_tables(runtime, rt, body.query, body.top_k)
    answer = result.answer(rt.name)
    return json_response(answer)
