"""The schema prompt item."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from dbmeta_app.api.deps import DOMAIN_ERRORS, json_body, read_body, runtime_of
from dbmeta_app.api.models import (
    PromptItem,
    PromptItemsRequest,
    PromptItemsResponse,
    SchemaRequest,
)
from dbmeta_app.items.bundle import get_prompt_items, prompt_budget, schema_item
from dbmeta_app.items.db_struct import get_schema_prompt_item

router = APIRouter(tags=["prompt items"])


@router.post(
    "/v1/prompt-items/schema",
    operation_id="getSchemaPromptItem",
    response_model=PromptItem,
    responses=DOMAIN_ERRORS,
    openapi_extra=json_body(SchemaRequest),
)
async def schema_prompt_item(request: Request) -> Response:
    """Return the schema of the tables relevant to a request (the full schema without one)."""
    body, runtime = await read_body(request, SchemaRequest), runtime_of(request)
    rt = runtime.profile(body.profile)
    if body.tables is not None:
        item = await get_schema_prompt_item(
            runtime.settings,
            runtime.cache,
            rt,
            tables=body.tables,
            with_examples=body.with_examples,
            max_tokens=prompt_budget(runtime.settings, body.max_tokens, False),
        )
    else:
        item = await schema_item(
            runtime, rt, body.user_request, body.top_k, body.with_examples, body.max_tokens
        )
    return json_response(item)


@router.post(
    "/v1/prompt-items",
    operation_id="getPromptItems",
    response_model=PromptItemsResponse,
    responses=DOMAIN_ERRORS,
    openapi_extra=json_body(PromptItemsRequest),
)
async def prompt_items(request: Request) -> Response:
    """Return every prompt item for a request in one call: schema, examples, instructions, dialect."""
    body, runtime = await read_body(request, PromptItemsRequest), runtime_of(request)
    rt = runtime.profile(body.profile)
    answer = await get_prompt_items(
        runtime,
        rt,
        body.user_request,
        list(body.items),
        body.schema_top_k,
        body.examples_top_k,
        body.max_tokens,
        body.with_examples,
    )
    return json_response(answer)


def json_response(item: dict[str, Any]) -> Response:
    """Serialise an answer with orjson (the item is built by our code, so it needs no re-validation)."""
    return Response(orjson.dumps(item), media_type="application/json")
