"""FastAPI dependencies: they only read what the lifespan put on app.state."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from dbmeta_app.api.models import ErrorBody
from dbmeta_app.errors import UnsupportedMediaTypeError
from dbmeta_app.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: a sync dependency would cost a worker-thread hop on every request
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# ---- the request path's routes read their body and runtime themselves ---------------------------------
# FastAPI's dependency solving (content-type parsing, stdlib json, query params, sub-dependencies) took a
# third of a cache hit's time in the handler; pydantic validates the raw bytes in one call instead.

M = TypeVar("M", bound=BaseModel)


def runtime_of(request: Request) -> Runtime:
    """The runtime the lifespan put on app.state."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_body(request: Request, model: type[M]) -> M:
    """Validate the JSON body as ``model``; any problem is a 422 shaped like FastAPI's own.

    A body sent as anything but JSON is a 415: a browser page may send a text/plain or untyped body to a
    service on localhost without asking first (no CORS preflight), never an application/json one.
    """
    body = await request.body()
    if body and not _is_json(request.headers.get("content-type", "")):
        raise UnsupportedMediaTypeError(
            "the request body must be JSON, sent with Content-Type: application/json"
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_input=False)]
        ) from None


#: The errors of the request path's routes (401 is added where API_TOKEN applies, by ``api/openapi.py``).
DOMAIN_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown profile"},
    422: {"model": ErrorBody, "description": "Malformed request: one entry per problem"},
    503: {"model": ErrorBody, "description": "The database or a dependency is unavailable"},
}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that uses ``read_body`` (``openapi_extra=``).

    The model itself is added to the document's components by ``api/openapi.py`` (``REQUEST_MODELS``).
    """
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}
