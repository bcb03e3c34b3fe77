"""One mapping from errors to HTTP answers: ``{"error": code, "detail": message}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dbmeta_app.api.middleware import error_code
from dbmeta_app.errors import DbmetaError
from dbmeta_app.scrub import scrub

log = logging.getLogger(__name__)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the input back: it may be megabytes long or carry secrets.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]


def public_detail(exc: DbmetaError) -> str:
    """What an answer says of an error: a dependency's failure (5xx) never names its login, host or address."""
    return scrub(exc.detail) if exc.status_code >= 500 else exc.detail


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every expected failure into a clear JSON answer."""

    @app.exception_handler(DbmetaError)
    async def dbmeta_error(_: Request, exc: DbmetaError) -> JSONResponse:
        detail = public_detail(exc)
        if exc.status_code >= 500:
            log.warning("%s: %s", exc.code, detail)
        return JSONResponse(
            {"error": exc.code, "detail": detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid_request", "detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI answers 400 to a body it cannot decode (not UTF-8); it is a malformed request like any other.
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "detail": [{"loc": ["body"], "msg": str(exc.detail), "type": "body_decode"}],
                },
                status_code=422,
            )
        detail = exc.detail
        limit = getattr(request.app, "max_body_size", None)
        if exc.status_code == 413 and limit is not None:
            detail = f"request body is over MAX_BODY_BYTES ({limit} bytes)"  # as EdgeMiddleware says it
        return JSONResponse(
            {"error": error_code(exc.status_code), "detail": detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Logged once, with its traceback and the request id, by EdgeMiddleware (it sees it re-raised).
        return JSONResponse({"error": "internal_error", "detail": "unexpected server error"}, status_code=500)
