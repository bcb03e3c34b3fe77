"""The OpenAPI document, finished for client generators: what FastAPI derives, plus what it cannot know.

- the request bodies of the routes that read their own body (``deps.read_body``) as named components;
- one error model: every 4xx/5xx is ``ErrorBody`` (FastAPI's ``HTTPValidationError`` is not what we answer);
- the statuses each operation really returns: 413/415 only where there is a body, 401 where a token applies;
- the bearer scheme (``API_TOKEN`` on ``/v1`` — optional, so ``security`` also allows none — and
  ``ADMIN_TOKEN`` on the admin routes);
- an example on every request and response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from dbmeta_app.api.models import (
    ErrorBody,
    IndexEvent,
    PreflightRequest,
    PromptItemsRequest,
    SchemaRequest,
    TableSearchRequest,
)
from dbmeta_app.api.security import ADMIN_PREFIX, is_gated

#: Bodies read by ``read_body`` (documented with ``json_body``), and other models referenced by hand.
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    SchemaRequest,
    PromptItemsRequest,
    TableSearchRequest,
    PreflightRequest,
    IndexEvent,
)
BEARER = "bearerAuth"
ERROR_REF = "#/components/schemas/ErrorBody"

#: Examples by component name (a model's own ``examples`` is used when it has some).
EXAMPLES: dict[str, Any] = {
    "SchemaRequest": {"user_request": "average order value per customer segment", "top_k": 5},
    "PromptItemsRequest": {
        "user_request": "average order value per customer segment",
        "items": ["db_struct", "query_examples"],
        "schema_top_k": 5,
        "examples_top_k": 2,
    },
    "TableSearchRequest": {"query": "open support tickets by priority", "top_k": 5},
    "PreflightRequest": {"sql": "SELECT count(*) FROM orders"},
    "ProfileSelection": {"profile": None},
    "InvalidateRequest": {"profile": "default", "kind": "schema"},
    "IndexRequest": {"profile": "default", "rebuild": False},
    "HealthBody": {"status": "ok"},
    "ReadyBody": {
        "ready": True,
        "degraded": False,
        "checks": {"database": {"profile": "default", "ok": True}},
        "pid": 4242,
    },
    "PreflightResponse": {
        "ok": True,
        "error": None,
        "error_kind": None,
        "position": None,
        "plan": [{"id": 2, "parent": 0, "detail": "SCAN orders"}],
        "plan_truncated": False,
        "estimated_rows": None,
        "estimated_cost": None,
        "warnings": [],
        "suggestion": None,
        "cached": False,
        "profile": "default",
        "dialect": "sqlite",
        "schema_version": "7b4f5c0c91183090",
    },
    "PromptItemsResponse": {
        "prompt_items": [
            {
                "type": "sql_dialect",
                "text": "SQLite: use strftime for dates ...",
                "score": None,
                "metadata": {"profile": "default", "dialect": "sqlite"},
            }
        ],
        "schema_version": "7b4f5c0c91183090",
        "profile": "default",
    },
    "CacheStats": {
        "backend": "redis",
        "redis_enabled": True,
        "l1_coherent": True,
        "breaker": {"state": "closed", "consecutive_failures": 0, "cooldown_s": 5.0, "times_opened": 0},
        "memory_entries": 3,
        "memory_bytes": 48213,
        "kinds": {
            "schema": {
                "hits": 10,
                "memory_hits": 40,
                "misses": 1,
                "errors": 0,
                "refreshes": 0,
                "too_large": 0,
                "hit_ratio": 0.98,
            }
        },
    },
    "InvalidateResponse": {"dropped": {"default/schema": 1}},
    "WarmResponse": {
        "profiles": {"default": {"cache": "miss", "schema_version": "7b4f5c0c91183090", "tables": 24}}
    },
    "SchemaCheckResponse": {
        "profiles": [{"profile": "default", "status": "unchanged", "schema_version": "7b4f5c0c91183090"}]
    },
    "IndexEvent": {"event": "progress", "profile": "default", "done": 120, "total": 240},
}
#: Error examples by status.
ERROR_EXAMPLES: dict[str, dict[str, Any]] = {
    "401": {"error": "unauthorized", "detail": "missing bearer token (Authorization: Bearer <API_TOKEN>)"},
    "403": {"error": "forbidden", "detail": "wrong admin token"},
    "404": {"error": "unknown_profile", "detail": "Unknown profile 'x'; configured profiles: default"},
    "409": {"error": "no_index", "detail": "this server uses keyword search (SEARCH_BACKEND=keyword)"},
    "413": {"error": "payload_too_large", "detail": "request body is over MAX_BODY_BYTES (2097152 bytes)"},
    "415": {"error": "unsupported_media_type", "detail": "the request body must be JSON"},
    "422": {
        "error": "invalid_request",
        "detail": [
            {"loc": ["body", "top_k"], "msg": "Input should be less than or equal to 200", "type": "x"}
        ],
    },
    "500": {"error": "internal_error", "detail": "unexpected server error"},
    "503": {"error": "unavailable", "detail": "the database of profile default does not answer"},
}
ERROR_DESCRIPTIONS = {
    "401": "No bearer token, or a wrong one (API_TOKEN is set)",
    "413": "Request body over MAX_BODY_BYTES",
    "415": "Request body not sent as application/json",
}


def install_openapi(app: FastAPI) -> None:
    """Serve the finished document at /openapi.json (built once, on first request)."""
    derive: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if getattr(app.state, "openapi_finished", False):
            return app.openapi_schema or {}
        app.openapi_schema = finish(derive())
        app.state.openapi_finished = True
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _error_response(status: str, description: str | None = None) -> dict[str, Any]:
    return {
        "description": description or ERROR_DESCRIPTIONS.get(status, "Error"),
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}, "example": ERROR_EXAMPLES[status]}},
    }


def _example_of(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    ref = schema.get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    if name in EXAMPLES:
        return EXAMPLES[name]
    examples = schemas.get(name, {}).get("examples")
    return examples[0] if examples else None


def finish(doc: dict[str, Any]) -> dict[str, Any]:
    """Complete FastAPI's document (see the module docstring)."""
    components = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    for model in REQUEST_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}"))
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "API_TOKEN on /v1 routes and /mcp when it is set (ADMIN_TOKEN is accepted too); "
            "ADMIN_TOKEN on /v1/admin routes",
        }
    }
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            has_body = "requestBody" in operation
            for status in list(responses):
                if status in ("413", "415") and not has_body:
                    del responses[status]
                elif status[0] in "45":
                    responses[status] = _error_response(status, responses[status].get("description"))
            if has_body:
                responses.setdefault("413", _error_response("413"))
                responses.setdefault("415", _error_response("415"))
                for media in operation["requestBody"].get("content", {}).values():
                    media.setdefault("example", _example_of(media.get("schema", {}), schemas))
            if path.startswith(ADMIN_PREFIX):
                operation["security"] = [{BEARER: []}]
            elif is_gated(path):
                operation["security"] = [{}, {BEARER: []}]  # only when API_TOKEN is set
                responses.setdefault("401", _error_response("401"))
            for response in responses.values():
                for media_type, media in response.get("content", {}).items():
                    if "example" in media or "examples" in media:
                        continue
                    if media_type.startswith(("text/plain", "application/openmetrics-text")):
                        media["example"] = "# TYPE dbmeta_http_requests_total counter\n"
                    else:
                        example = _example_of(media.get("schema", {}), schemas)
                        if example is not None:
                            media["example"] = example
            operation["responses"] = dict(sorted(responses.items()))
    return doc
