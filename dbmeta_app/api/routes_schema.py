"""The schema prompt item."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Response

from dbmeta_app.api.deps import RuntimeDep
from dbmeta_app.api.models import (
    ErrorBody,
    PromptItem,
    PromptItemsRequest,
    PromptItemsResponse,
    SchemaRequest,
)
from dbmeta_app.prompt_items.bundle import get_prompt_items, schema_item
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
    if body.tables is not None:
        item = await get_schema_prompt_item(
            runtime.settings, runtime.cache, rt, tables=body.tables, with_examples=body.with_examples
        )
    else:
        item = await schema_item(runtime, rt, body.user_request, body.top_k, body.with_examples)
    return json_response(item)


@router.post(
    "/v1/prompt-items",
    response_model=PromptItemsResponse,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def prompt_items(body: PromptItemsRequest, runtime: RuntimeDep) -> Response:
    """Return every prompt item for a request in one call: schema, examples, instructions, dialect."""
    rt = runtime.profile(body.profile)
    answer = await get_prompt_items(
        runtime, rt, body.user_request, list(body.items), body.schema_top_k, body.examples_top_k
    )
    return json_response(answer)


def json_response(item: dict[str, Any]) -> Response:
    """Serialise an answer with orjson (the item is built by our code, so it needs no re-validation)."""
    return Response(orjson.dumps(item), media_type="application/json")
