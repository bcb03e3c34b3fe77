"""The FastAPI application: ``uvicorn dbmeta_app.main:app``."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dbmeta_app import __version__
from dbmeta_app.api import routes_admin, routes_health, routes_preflight, routes_schema, routes_tables
from dbmeta_app.api.announce import announce_http_url
from dbmeta_app.api.docs import mount_docs
from dbmeta_app.api.errors import install_error_handlers
from dbmeta_app.api.mcp_server import mount_mcp
from dbmeta_app.api.middleware import EdgeMiddleware
from dbmeta_app.api.models import ErrorBody
from dbmeta_app.api.openapi import install_openapi
from dbmeta_app.api.security import TokenGate, mcp_transport_security
from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Settings, get_settings
from dbmeta_app.errors import DbmetaError
from dbmeta_app.logging_setup import configure_logging
from dbmeta_app.runtime import Runtime, open_runtime

log = logging.getLogger(__name__)

#: `dbmeta serve`'s exit status when start-up stopped on a configuration error (the CLI's EXIT_FAILED).
STARTUP_CONFIG_EXIT = 2


class DbmetaApp(FastAPI):
    """FastAPI with ``EdgeMiddleware`` outside its whole stack (its error middleware included)."""

    #: Set when start-up failed for a reason the operator can fix (a setting): said in one line.
    startup_error: str | None = None
    #: The exit status `dbmeta serve` gives for ``startup_error`` (2, as for a bad variable), when it has one.
    startup_exit_code: int | None = None

    def build_middleware_stack(self) -> ASGIApp:
        return EdgeMiddleware(TokenGate(super().build_middleware_stack()), max_body_bytes=self.max_body_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await super().__call__(scope, receive, send)
            return

        async def one_line(message: Message) -> None:
            # The server prints what a failed start-up sends: the traceback, unless the reason is known.
            if message.get("type") == "lifespan.startup.failed" and self.startup_error is not None:
                message = {**message, "message": self.startup_error}
            await send(message)

        await super().__call__(scope, receive, one_line)


def create_app(settings: Settings | None = None, *, cache: RedisCache | None = None) -> FastAPI:
    """Build the app; resources are opened in the lifespan, from the given settings or the environment.

    ``cache``: a cache client to use instead of one built from the settings (tests give a fake Redis).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal settings
        async with AsyncExitStack() as stack:
            try:
                settings = settings or get_settings()
                configure_logging(settings.log_level, settings.log_format)
                # What is only found while the runtime opens (the model, a profile's curated files) is a
                # configuration error like a bad variable: one line naming it, never a traceback.
                rt = await stack.enter_async_context(_start_up(app, settings, cache))
            except DbmetaError as exc:
                app.startup_error = f"dbmeta cannot start: {exc.detail}"  # type: ignore[attr-defined]
                app.startup_exit_code = STARTUP_CONFIG_EXIT  # type: ignore[attr-defined]
                raise
            log.info(
                "dbmeta %s started: client=%s env=%s profiles=%s cache=%s",
                __version__,
                settings.client,
                settings.env,
                ",".join(sorted(rt.profiles)),
                "redis" if settings.redis_cache_enabled else "memory",
            )
            async with mcp.run(mcp_transport_security(settings)):
                yield

    from_env = _settings_from_env() if settings is None else None
    if from_env is not None:
        # The app uvicorn imports: its logging (format, levels) is set before uvicorn's first line about it.
        configure_logging(from_env.log_level, from_env.log_format)
    configured = settings or from_env
    max_body = (
        configured.max_body_bytes
        if configured is not None
        else Settings.model_fields["max_body_bytes"].default
    )
    app = DbmetaApp(
        title="dbmeta",
        max_body_size=max_body,
        # answers any operation may give (EdgeMiddleware, the JSON body check): documented once, for all
        responses={
            413: {"model": ErrorBody, "description": "Request body over MAX_BODY_BYTES"},
            415: {"model": ErrorBody, "description": "Request body not sent as application/json"},
            500: {"model": ErrorBody, "description": "Unexpected server error (logged with the request id)"},
        },
        docs_url=None,  # served from local assets by mount_docs
        redoc_url=None,
        version=__version__,
        summary="Database context for LLM text-to-SQL: schema prompt items, table search, safe preflight.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    mount_docs(app)
    app.include_router(routes_health.router)
    app.include_router(routes_schema.router)
    app.include_router(routes_tables.router)
    app.include_router(routes_preflight.router)
    app.include_router(routes_admin.router)
    mcp = mount_mcp(app, max_body_bytes=max_body)
    return app


@asynccontextmanager
async def _start_up(app: FastAPI, settings: Settings, cache: RedisCache | None) -> AsyncIterator[Runtime]:
    """``open_runtime`` for the service, its start-up ended by a SIGTERM or SIGINT that arrives meanwhile."""
    async with AsyncExitStack() as stack:
        with _StopOnSignal() as stopping:
            try:
                rt = await stack.enter_async_context(open_runtime(settings, cache=cache, serve=True))
            except asyncio.CancelledError:
                if stopping.signal is not None:  # what was opened is closed: one line, no traceback
                    name = signal.Signals(stopping.signal).name
                    app.startup_error = f"dbmeta stopped during start-up ({name})"  # type: ignore[attr-defined]
                raise
        rt.spawn(announce_http_url(rt), "dbmeta-announce")
        app.state.runtime = rt
        yield rt


class _StopOnSignal:
    """While start-up runs, SIGTERM and SIGINT cancel it (uvicorn only notes them and waits for its end).

    The handlers in place (uvicorn's) still see the signal: the server exits as it does for a signal. Only in
    the main thread, where signals are delivered; elsewhere (a test client) start-up runs as before.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._task, self._loop = asyncio.current_task(), asyncio.get_running_loop()
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *_: object) -> None:
        previous, self._previous, self._task = self._previous, {}, None
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if self._task is not None and self._loop is not None and self.signal is None:
            self.signal = sig
            self._loop.call_soon_threadsafe(self._cancel)
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)

    def _cancel(self) -> None:
        if self._task is not None:  # still starting: start-up is over once the handlers are put back
            self._task.cancel()


def _settings_from_env() -> Settings | None:
    # Read without failing here: bad settings fail in the lifespan, with a message naming the variable.
    try:
        return get_settings()
    except Exception:  # noqa: BLE001
        return None


app = create_app()
