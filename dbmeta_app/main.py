"""The FastAPI application: ``uvicorn dbmeta_app.main:app``."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

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
from dbmeta_app.logging_setup import configure_logging
from dbmeta_app.ownership import Anchor, anchor_path, lite_path, served_identities
from dbmeta_app.runtime import Runtime, open_runtime
from dbmeta_app.search.runtime import SearchRuntime
from dbmeta_app.tasks import log_privileges, watch_drift

log = logging.getLogger(__name__)

#: Seconds a thread that wants the GIL waits before it asks the holder to give it up (Python's default: 5 ms).
GIL_SWITCH_INTERVAL = 0.0005


class DbmetaApp(FastAPI):
    """FastAPI with ``EdgeMiddleware`` outside its whole stack (its error middleware included)."""

    def build_middleware_stack(self) -> ASGIApp:
        return EdgeMiddleware(TokenGate(super().build_middleware_stack()), max_body_bytes=self.max_body_size)


def create_app(
    settings: Settings | None = None, *, cache: RedisCache | None = None, runtime: Runtime | None = None
) -> FastAPI:
    """Build the app; resources are opened in the lifespan, from the given settings or the environment."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal settings
        if runtime is not None:
            app.state.runtime = runtime
            async with mcp.run(mcp_transport_security(runtime.settings)):
                yield
            return
        settings = settings or get_settings()
        configure_logging(settings.log_level, settings.log_format)
        # Work in worker threads (introspection, decoding a large snapshot) holds the GIL; the event loop
        # waits at most this long for it, not Python's 5 ms. Measured with a 1,000-table schema re-read every
        # 2 s (bench/refresh_ahead.py --realtime --drift): p99 6.10 -> 1.13 ms, slowest 20.3 -> 4.3 ms.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        rt = open_runtime(settings, cache)
        # The CLI on this DATA_DIR finds the server through this anchor (see ownership.py). A Milvus Lite
        # file is claimed when search opens it; otherwise the claim only tells the CLI where we serve.
        rt.anchor = Anchor(anchor_path(settings), kind="server", served=served_identities(settings))
        if lite_path(settings) is None:
            try:
                rt.anchor.claim()
            except OSError as exc:  # e.g. a read-only DATA_DIR: the service runs, the CLI cannot find it
                log.warning(
                    "Cannot write beside %s (%s): the CLI will not find this server", rt.anchor.path, exc
                )
        await rt.cache.start()
        if settings.search_backend == "milvus":
            rt.search = SearchRuntime(rt)
            rt.schema_listeners.append(rt.search.on_schema_change)
            await rt.search.start()
        if settings.schema_check_interval > 0:
            rt.spawn(watch_drift(rt), "dbmeta-drift-watcher")
        rt.spawn(log_privileges(rt), "dbmeta-privileges")
        rt.spawn(announce_http_url(rt), "dbmeta-announce")
        app.state.runtime = rt
        log.info(
            "dbmeta %s started: client=%s env=%s profiles=%s cache=%s",
            __version__,
            settings.client,
            settings.env,
            ",".join(sorted(rt.profiles)),
            "redis" if settings.redis_cache_enabled else "memory",
        )
        try:
            async with mcp.run(mcp_transport_security(settings)):
                yield
        finally:
            await rt.close()

    from_env = _settings_from_env() if settings is None and runtime is None else None
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


def _settings_from_env() -> Settings | None:
    # Read without failing here: bad settings fail in the lifespan, with a message naming the variable.
    try:
        return get_settings()
    except Exception:  # noqa: BLE001
        return None


app = create_app()
