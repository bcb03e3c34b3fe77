"""The schema prompt item."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Response

from dbmeta_app.api.deps import RuntimeDep
from dbmeta_app.api.models import ErrorBody, PromptItem, SchemaRequest
from dbmeta_app.prompt_items.db_struct import get_schema_prompt_item

router = APIRouter(tags=["prompt items"])


@router.post(
    "/v1/prompt-items/schema",
    response_model=PromptItem,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def schema_prompt_item(body: SchemaRequest, runtime: RuntimeDep) -> Response:
    """Return the schema of the tables relevant to a request (the full schema without one)."""
    rt = runtime.profile(body.profile)
    search = runtime.extras.get("table_search")
    if body.tables is not None or not body.user_request or search is None:
        extra = None
        if body.tables is None and body.user_request:
            extra = {
                "degraded": True,
                "degraded_reason": "table search is not available; full schema returned",
            }
        item = await get_schema_prompt_item(
            runtime.settings,
            runtime.cache,
            rt,
            tables=body.tables,
            with_examples=body.with_examples,
            extra_metadata=extra,
        )
    else:
        item = await search(runtime, rt, body)
    return json_response(item)


def json_response(item: dict[str, Any]) -> Response:
    """Serialise an answer with orjson (the item is built by our code, so it needs no re-validation)."""
    return Response(orjson.dumps(item), media_type="application/json")
