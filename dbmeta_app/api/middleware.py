"""The outermost ASGI layer of the app, around everything FastAPI and the MCP endpoint do.

For every HTTP request it

- binds a request id (the caller's ``X-Request-ID`` when sane, else a new one) to the logs and returns it on
  every answer, with ``Server-Timing: app;dur=<ms>`` (the time until the app started answering) and
  ``X-Dbmeta-Worker: <pid>`` (which of the workers of ``serve --workers N`` answered);
- refuses a body whose ``Content-Length`` is over ``MAX_BODY_BYTES`` at once, with the JSON 413 (a body sent
  in chunks is counted as it is read, by FastAPI's own cap, and answered by the same JSON error); a body that
  has not all arrived ``BODY_SECONDS`` after the app asked for it is answered with the JSON 408 (a client that
  sends half a body and stops would otherwise hold its connection with no answer until it gives up); before any
  error answer the rest of the request body is read and dropped (bounded: ``DRAIN_MAX_BYTES``,
  ``DRAIN_SECONDS``), so a client that sends its whole body before reading gets the answer, not a reset;
- gives every 4xx/5xx answer one shape, ``{"error": code, "detail": message}``: an answer that is not
  already shaped so (Starlette's plain-text errors, a library's ``{"detail": …}``) is rewritten, keeping its
  status, its headers and the other fields of a JSON object. A JSON-RPC error (the MCP transport's) stays a
  valid JSON-RPC error, ``{"jsonrpc", "id", "error": {"code", "message", "data"}}``, with the same fields
  (``error``, ``detail``, and ``request_id``) under ``error.data``;
- turns anything that escapes the app (any exception class, raised in a route, a dependency, a middleware or
  a worker thread) into a JSON 500 when no answer was started, logs it once with the request id, and does not
  re-raise it once the answer is complete, so the server keeps the connection instead of resetting it.

It sits outside Starlette's ``ServerErrorMiddleware``, which always re-raises after answering (that re-raise
made uvicorn log "Exception in ASGI application" and close the connection under the client).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

import orjson
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dbmeta_app.api.security import MCP_PATH
from dbmeta_app.logging_setup import request_id
from dbmeta_app.metrics import observe_http

log = logging.getLogger(__name__)

_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
#: An error answer longer than this is passed on as it is rather than held in memory to be reshaped.
_ERROR_BODY_MAX = 256 * 1024
#: Error codes by HTTP status; the routes' own errors carry theirs (``errors.py``).
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    421: "misdirected_request",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}


def error_code(status: int) -> str:
    """The ``error`` code of an answer with this HTTP status."""
    return ERROR_CODES.get(status, "http_error" if status < 500 else "internal_error")


def error_body(code: str, detail: Any) -> bytes:
    """The one error shape, as JSON bytes."""
    return orjson.dumps({"error": code, "detail": detail})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_cancellation(exc: BaseException) -> bool:
    """Cancellation and interrupts go on up; anything else is the request's failure."""
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | GeneratorExit):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_cancellation(inner) for inner in exc.exceptions)
    return False


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def reshape_error(status: int, content_type: str, body: bytes, rid: str | None = None) -> bytes | None:
    """Return the one-shape body for an error answer, or None when it already has that shape.

    A JSON object keeps what it says (``/readyz``'s checks) and gets a string ``error`` code and a ``detail``:
    from its own ``detail``, or the status's phrase. Any other body becomes the ``detail``.
    A JSON-RPC error (the MCP transport's) stays one, for JSON-RPC clients: its ``error`` object keeps its
    ``code`` and ``message`` and gets the same fields as ``data``: ``error``, ``detail`` (the message) and
    ``request_id`` (``rid``, else the request id of the context).
    """
    data: Any = None
    if "json" in content_type:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str) and "detail" in data:
        return None
    if isinstance(data, dict) and "jsonrpc" in data and isinstance(data.get("error"), dict):
        return _json_rpc_error(status, data, request_id.get() if rid is None else rid)
    shaped: dict[str, Any] = dict(data) if isinstance(data, dict) else {}
    detail: Any = (
        data.get("detail") if isinstance(data, dict) else body.decode("utf-8", "replace").strip()[:1000]
    )
    shaped.update(error=error_code(status), detail=detail or _phrase(status))
    return orjson.dumps(shaped)


def _json_rpc_error(status: int, data: dict[str, Any], rid: str) -> bytes | None:
    error = dict(data["error"])
    if not isinstance(error.get("code"), int) or isinstance(error.get("code"), bool):
        error["code"] = -32600 if status < 500 else -32603  # Invalid Request / Internal error
    if not isinstance(error.get("message"), str) or not error["message"]:
        error["message"] = _phrase(status)
    fields = {"error": error_code(status), "detail": error["message"], "request_id": rid}
    extra = error.get("data")
    if extra is not None and not isinstance(extra, dict):
        return None  # the sender's own data, which is not ours to replace: passed on as it is
    error["data"] = {**(extra or {}), **fields}
    return orjson.dumps({**data, "error": error})


def _is_mcp(scope: Scope) -> bool:
    """A request to the MCP endpoint, whose errors are JSON-RPC errors (for JSON-RPC clients)."""
    return scope.get("path") in (MCP_PATH, MCP_PATH + "/")


def _json_rpc_error_body(detail: str) -> bytes:
    """A JSON-RPC "invalid request" error with no id; sent through :class:`_Answer`, it gets the fields as data."""
    return orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": detail}})


def _without_body(send: Send) -> Send:
    """``send`` with every body part emptied (the answer to a HEAD keeps its headers, Content-Length included)."""

    async def head_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head_send


def route_label(scope: Scope) -> str:
    """The template of the route that answered (``/v1/tables/search``), never the raw path: ``unmatched``."""
    route = scope.get("route")
    if route is None and "app" in scope:
        # The router names the route in the scope once it routes; a request answered before (a 401 of the token
        # gate) or by a plain Starlette route (/mcp) is matched here, into included routers too
        route = _matching(scope["app"].router.routes, scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def _matching(routes: Any, scope: Scope) -> Any:
    for candidate in routes:
        if candidate.matches(scope)[0] is Match.FULL:
            inner = getattr(getattr(candidate, "original_router", None), "routes", None)
            return _matching(inner, scope) if inner is not None else candidate
    return None


class EdgeMiddleware:
    """Request ids, the body cap, one error shape and a last-resort JSON 500 for everything below it."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int | None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
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
        token = request_id.set(rid)
        body = _Body(scope, receive)
        length = _content_length(scope)
        answer = _Answer(
            send,
            rid.encode(),
            self.worker,
            reshape=scope.get("method") != "HEAD",
            before_error=lambda: body.drain(length),
            instead=lambda: (408, body.late()) if body.timed_out else None,
            json_rpc=_is_mcp(scope),
        )
        app_scope, app_send = scope, cast(Send, answer.send)
        if scope.get("method") == "HEAD" and not _is_mcp(scope):
            # HEAD is GET without the body (RFC 9110): every GET route answers it (not /mcp, whose GET streams)
            app_scope, app_send = {**scope, "method": "GET"}, _without_body(answer.send)
        try:
            if self.max_body_bytes is not None and length is not None and length > self.max_body_bytes:
                await answer.error(
                    413,
                    f"request body of {length} bytes is over MAX_BODY_BYTES ({self.max_body_bytes} bytes)",
                    json_rpc=_is_mcp(scope),
                )
                return
            await self.app(app_scope, body.receive, app_send)
            if body.timed_out and not answer.started:  # the app took the body's end for a client gone
                await answer.error(408, body.late(), json_rpc=_is_mcp(scope))
        except BaseException as exc:
            answer.status = answer.status or 500
            if _is_cancellation(exc):
                raise
            where = f"{scope.get('method', '')} {scope.get('path', '')}"
            if body.timed_out and not answer.started:
                await answer.error(408, body.late(), json_rpc=_is_mcp(scope))
            elif body.client_left:
                pass  # the client hung up before its request was whole (said below): nothing failed
            elif not answer.started:
                log.error("Unexpected error answering %s", where, exc_info=exc)
                await answer.error(500, "unexpected server error")
            elif not answer.complete:
                # Half an answer is out: nothing can be said any more; the server closes the connection.
                log.error("Unexpected error in the middle of answering %s", where, exc_info=exc)
                raise
            else:
                # Answered already (Starlette's error handler answers, then re-raises for the server's log).
                log.error("Unexpected error answering %s (answered 500)", where, exc_info=exc)
        finally:
            status = CLIENT_LEFT if body.client_left else answer.status or 500
            if body.client_left:
                log.info(
                    "The client left before sending its whole request: %s %s", scope["method"], scope["path"]
                )
            request_id.reset(token)
            observe_http(route_label(app_scope), scope.get("method", ""), status, answer.elapsed())


#: The status a request is counted with when its client hung up before sending its whole body (as nginx
#: counts it: a 4xx, the client's doing, not a server error).
CLIENT_LEFT = 499

#: Before an error answer, what is left of the request body is read and dropped, up to this many bytes and
#: seconds: a client that sends its whole body before reading (most HTTP libraries, without ``Expect:
#: 100-continue``; urllib also says ``Connection: close``) otherwise has its connection reset under it by the
#: server's close, and sees that instead of the answer. A larger or slower rest is not waited for.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0
#: The whole request body must arrive within this many seconds of the app asking for it (the service's bodies
#: are small JSON documents); past it the app is told the client is gone and the caller gets the JSON 408.
BODY_SECONDS = 30.0


class _Body:
    """The request body as the app reads it, and what is left of it dropped before an error answer."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._receive = receive
        self._waits_for_continue = any(
            name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]
        )
        self.started = False  # the app asked for the body (a client waiting for 100 Continue now sends it)
        self.finished = False  # the last part was read (or the client left)
        self.client_left = False  # the client hung up before sending the whole body
        self.timed_out = False  # the body did not all arrive within BODY_SECONDS
        self._deadline: float | None = None

    async def receive(self) -> Message:
        self.started = True
        if self.finished:
            message = await self._receive()
        else:
            loop = asyncio.get_running_loop()
            if self._deadline is None:
                self._deadline = loop.time() + BODY_SECONDS
            try:
                async with asyncio.timeout_at(self._deadline):
                    message = await self._receive()
            except TimeoutError:
                self.timed_out = self.finished = True
                return {"type": "http.disconnect"}
        self._note(message)
        return message

    def late(self) -> str:
        return f"the request body did not all arrive within {BODY_SECONDS:g} s"

    def _note(self, message: Message) -> None:
        if message["type"] == "http.disconnect" and not self.finished:
            self.client_left = True
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.finished = True

    async def drain(self, declared: int | None) -> None:
        """Read and drop the rest (bounded); not when the client still waits to be asked for it."""
        if self.finished or (self._waits_for_continue and not self.started):
            return
        if declared is not None and declared > DRAIN_MAX_BYTES:
            return
        read = 0
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while not self.finished and read <= DRAIN_MAX_BYTES:
                    message = await self._receive()
                    self._note(message)
                    read += len(message.get("body", b""))
        except TimeoutError:
            return


class _Answer:
    """The response going out: headers added at its start, error bodies reshaped, its progress known."""

    def __init__(
        self,
        send: Send,
        rid: bytes,
        worker: tuple[bytes, bytes],
        *,
        reshape: bool,
        before_error: Callable[[], Awaitable[None]],
        instead: Callable[[], tuple[int, str] | None] = lambda: None,
        json_rpc: bool = False,
    ) -> None:
        self._send = send
        self._before_error = before_error
        self._instead = instead  # an error answer to give instead of the app's (a body that came too late)
        self._json_rpc = json_rpc
        self._replaced = False  # the app's answer is being dropped for ours
        self._rid = rid
        self._worker = worker
        self._reshape = reshape
        self._started_at = time.perf_counter()
        self.status = 0  # the answer's status, once it starts
        self.started = False  # the start went to the server
        self.complete = False  # the last body part went to the server
        self._held: Message | None = None  # an error answer's start, held until its body is reshaped
        self._body: list[bytes] = []
        self._size = 0

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self._replaced:
            return
        if kind == "http.response.start" and message["status"] >= 400 and not self.started:
            instead = self._instead()
            if instead is not None:
                self._instead = lambda: None
                await self.error(*instead, json_rpc=self._json_rpc)
                self._replaced = True
                return
        if kind == "http.response.start":
            self.status = message["status"]
            took = f"app;dur={(time.perf_counter() - self._started_at) * 1000:.2f}".encode()
            headers = [
                (k, v)
                for k, v in message.get("headers", ())
                if k.lower() not in (b"x-request-id", b"server-timing", b"x-dbmeta-worker")
            ]
            message = {
                **message,
                "headers": [*headers, (b"x-request-id", self._rid), (b"server-timing", took), self._worker],
            }
            if message["status"] >= 400:
                await self._before_error()  # the request body's rest, so the answer is read, not reset
            if self._reshape and message["status"] >= 400:
                self._held = message
                return
            self.started = True
            await self._send(message)
            return
        if kind == "http.response.body" and self._held is not None:
            chunk = message.get("body", b"")
            self._body.append(chunk)
            self._size += len(chunk)
            if message.get("more_body", False):
                if self._size > _ERROR_BODY_MAX:
                    await self._flush_raw(more_body=True)
                return
            await self._flush_reshaped()
            return
        if kind == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        await self._send(message)

    def elapsed(self) -> float:
        """Seconds since the request came in."""
        return time.perf_counter() - self._started_at

    async def error(self, status: int, detail: str, *, json_rpc: bool = False) -> None:
        """Answer with the one error shape, or as a JSON-RPC error (``json_rpc``; nothing must have been sent yet)."""
        self._held, self._body, self._size = None, [], 0
        body = _json_rpc_error_body(detail) if json_rpc else error_body(error_code(status), detail)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def _flush_reshaped(self) -> None:
        held, self._held = self._held, None
        assert held is not None
        body = b"".join(self._body)
        headers = list(held["headers"])
        content_type = next((v.decode("latin-1") for k, v in headers if k.lower() == b"content-type"), "")
        shaped = reshape_error(held["status"], content_type.lower(), body, self._rid.decode("latin-1"))
        if shaped is not None:
            body = shaped
            headers = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        self.started = True
        await self._send({**held, "headers": headers})
        self.complete = True
        await self._send({"type": "http.response.body", "body": body})

    async def _flush_raw(self, *, more_body: bool) -> None:
        held, self._held = self._held, None
        assert held is not None
        self.started = True
        await self._send(held)
        await self._send({"type": "http.response.body", "body": b"".join(self._body), "more_body": more_body})
        self._body = []
