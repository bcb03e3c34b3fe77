"""ASGI middleware: a request id per request (taken from X-Request-ID when sane), echoed in the answer,
the time the app took until it started answering, as ``Server-Timing: app;dur=<ms>``, and the process that
answered, as ``X-Dbmeta-Worker: <pid>`` (which of the workers of ``serve --workers N``)."""

from __future__ import annotations

import os
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dbmeta_app.logging_setup import request_id

_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    """Bind a request id to the request's context (for logs) and return it as X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.worker = (b"x-dbmeta-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                rid = candidate if _SANE.match(candidate) else ""
                break
        rid = rid or uuid.uuid4().hex
        header = (b"x-request-id", rid.encode())
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()
                message["headers"] = [
                    *message.get("headers", ()),
                    header,
                    (b"server-timing", took),
                    self.worker,
                ]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
