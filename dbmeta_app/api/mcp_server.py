"""The service's capabilities as MCP tools, served over streamable HTTP at ``/mcp`` in the same app.

Four tools mirror the HTTP API (same domain calls, same answers), two more browse the schema:

- ``prompt_items``       ≙ ``POST /v1/prompt-items``
- ``preflight_query``    ≙ ``POST /v1/preflight``
- ``search_tables``      ≙ ``POST /v1/tables/search``
- ``get_table_details``  ≙ ``POST /v1/prompt-items/schema`` with ``tables``
- ``list_schemas``, ``list_tables`` (``detail_level``: names | summary | full)

Each answer carries the JSON object of the HTTP API as ``structuredContent``, declared as the tool's
``outputSchema`` from the same pydantic models as the HTTP answers (``api/models.py``), and a compact text
rendering an LLM reads directly (no JSON repeated). Resources ``dbmeta://{profile}/schema`` and
``dbmeta://{profile}/tables/{name}`` and the prompt ``write_sql`` serve the same context. Expected failures (unknown profile, database down, invalid arguments) are tool results with
``isError: true`` and a message naming the problem (the JSON ``{"error", "detail"}`` as the text; not as
``structuredContent``, which clients check against the tool's ``outputSchema``), never protocol errors or crashes.
Arguments the input schema refuses are answered like the HTTP API's 422, ``{"error": "invalid_request",
"detail": [{"loc", "msg", "type"}, ...]}`` (``loc``: the argument's path; the value sent is never repeated), by
:class:`DbmetaMCPServer` for every tool, and counted and timed like any other call. A resource or the prompt
failing for a domain reason is a JSON-RPC error whose message is ``"<error>: <detail>"``.

Transport choices:

- Stateless and JSON responses: every tool is one request → one answer, and the deployment scales
  horizontally (HPA) behind a plain Service, so no request may depend on a session held by one replica.
- ``/mcp`` and ``/mcp/`` are both exact routes (no 307 slash redirect a client might refuse to follow).
- Host/Origin (DNS-rebinding) checks: on, with loopback names unless ``MCP_ALLOWED_HOSTS`` /
  ``MCP_ALLOWED_ORIGINS`` say otherwise (``api/security.py``); a refused request is a JSON 403.
- Errors of the transport itself (parse error, not acceptable, …) are JSON-RPC errors with the SDK's code and
  the service's ``error``/``detail``/``request_id`` as ``error.data`` (``api/middleware.py``); a request whose
  ``id`` is neither a string nor an integer is one too (-32600), where the SDK would take it for a notification;
  so is a body that is not one JSON-RPC 2.0 message: -32700 (not JSON) or -32600 (a batch: not supported; any
  other value), with a one-line message (:func:`_refuse_message`), and over stdio such a line is answered
  alike (:class:`_AnsweringMalformed`), a request with an invalid id included (:func:`_stdin_lines`). A body
  over ``MAX_BODY_BYTES`` is a JSON-RPC 413.
- Host and Origin are compared in lower case (:func:`_case_folded`), as host names are case-insensitive.
- Client mistakes with the prompt (unknown prompt, missing or unknown argument), an unknown resource and params
  of the wrong shape for any method (:func:`_described_params`: the fields and what is wrong, never the values)
  are JSON-RPC invalid params (-32602) whose message is ``"<error>: <detail>"``, logged at info, not tracebacks.
- The session manager lives in the app's lifespan (:meth:`McpHttpEndpoint.run`); a new one is made for
  each lifespan, as the SDK's can only be run once.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final, cast

import anyio
import orjson
import pydantic_core
from fastapi import FastAPI
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ResourceNotFoundError,
    ToolError,
    UnexpectedToolError,
)
from mcp.server.stdio import _claim_fd, _open_stdin_diversion, _UnownedTextWrapper, stdio_server
from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    CallToolResult,
    ErrorData,
    GetPromptResult,
    InputRequiredResult,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    TextContent,
    ToolAnnotations,
    jsonrpc_message_adapter,
)
from pydantic import Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from dbmeta_app import __version__
from dbmeta_app.api.errors import public_detail
from dbmeta_app.api.models import (
    ItemType,
    PreflightResponse,
    PromptItem,
    PromptItemsResponse,
    SchemaList,
    TableList,
    TableSearchResponse,
)
from dbmeta_app.api.security import MCP_PATH, refuse_foreign
from dbmeta_app.errors import DbmetaError
from dbmeta_app.items import browse
from dbmeta_app.items.browse import DetailLevel
from dbmeta_app.items.bundle import ITEM_TYPES, get_prompt_items, prompt_budget
from dbmeta_app.items.db_struct import get_schema_prompt_item
from dbmeta_app.items.preflight import preflight
from dbmeta_app.logging_setup import request_id
from dbmeta_app.metrics import MCP_TOOL_CALLS, MCP_TOOL_SECONDS
from dbmeta_app.runtime import Runtime
from dbmeta_app.schema.printable import visible
from dbmeta_app.search import runtime as search_runtime
from dbmeta_app.search.hits import family_note

log = logging.getLogger(__name__)

MAX_TEXT = 20_000
MAX_TABLES = 2_000

# Argument types: their constraints and descriptions are the tools' JSON schema, and the SDK validates
# arguments against them before a tool runs (a violation is an isError result naming the field).
Profile = Annotated[
    str | None,
    Field(max_length=128, description="Database profile name; the service's default profile when null"),
]
UserRequest = Annotated[
    str | None,
    Field(
        max_length=MAX_TEXT,
        description="The user's natural-language request; null → the full schema and the first examples",
    ),
]
Items = Annotated[
    list[ItemType] | None,
    Field(
        min_length=1,
        max_length=len(ITEM_TYPES),
        description="Item types to return, in answer order; null → all of: " + ", ".join(ITEM_TYPES),
    ),
]
SchemaTopK = Annotated[int, Field(ge=1, le=200, description="How many relevant tables the schema item holds")]
ExamplesTopK = Annotated[int, Field(ge=0, le=50, description="How many curated query examples to return")]
Sql = Annotated[str, Field(description="Exactly one SQL query (a read-only SELECT) to check with EXPLAIN")]
Query = Annotated[
    str,
    Field(
        min_length=1, max_length=MAX_TEXT, description="What the tables are needed for, in natural language"
    ),
]
TopK = Annotated[int, Field(ge=1, le=200, description="How many tables to return, best first")]
Tables = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=512)]],
    Field(
        min_length=1,
        max_length=MAX_TABLES,
        description="Table names: schema.table, or the bare name when it is unambiguous",
    ),
]
WithExamples = Annotated[bool, Field(description="Also include a few sample rows (CSV) per table")]
SchemaName = Annotated[
    str | None,
    Field(
        max_length=256, description="Only the tables of this schema (from list_schemas); null → every schema"
    ),
]
Detail = Annotated[
    DetailLevel,
    Field(description="names: table names only; summary: kind, column count, description; full: schema text"),
]
Limit = Annotated[int, Field(ge=1, le=MAX_TABLES, description="At most this many tables, by name")]
MaxTokens = Annotated[
    int | None,
    Field(
        ge=0,
        le=1_000_000,
        description="Budget of the schema text in estimated tokens (0: no limit; null: the server's default "
        "for tables ranked for a request, no limit for named tables)",
    ),
]

_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _jsonable(answer: dict[str, Any]) -> dict[str, Any]:
    # The same encoding the HTTP API uses, so both interfaces answer exactly the same values.
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(answer))
    return decoded


def _result(text: str, structured: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _error(tool: str, exc: DbmetaError) -> CallToolResult:
    detail = public_detail(exc)
    if exc.status_code >= 500:
        log.warning("MCP tool %s: %s: %s", tool, exc.code, detail)
    else:
        log.info("MCP tool %s refused: %s: %s", tool, exc.code, detail)
    return _error_result(exc.code, detail)


def _invalid_arguments(tool: str, exc: ValidationError) -> CallToolResult:
    """The arguments the tool's input schema refuses, as the HTTP API's 422 says it (never the values sent)."""
    problems = [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    log.info("MCP tool %s refused: invalid_request: %s", tool, [p["loc"] for p in problems])
    return _error_result("invalid_request", problems)


def _error_result(code: str, detail: str | list[dict[str, Any]]) -> CallToolResult:
    # The error's JSON is the text, not structuredContent: clients check structuredContent against the
    # tool's outputSchema (the answer's), and an error does not match it (the Inspector then hides it).
    return CallToolResult(
        content=[TextContent(type="text", text=orjson.dumps({"error": code, "detail": detail}).decode())],
        is_error=True,
    )


async def _guard(tool: str, call: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """Run a tool body; a domain error becomes an isError result, and so does anything unexpected.

    An unexpected error is answered like the HTTP API's 500 (``internal_error``), logged once with its
    traceback and the request id, which the answer names so that the log line can be found.
    Every call is counted and timed (``dbmeta_mcp_tool_*``).
    """
    started = time.perf_counter()
    try:
        result = await call()
    except DbmetaError as exc:
        result = _error(tool, exc)
    except Exception:
        log.exception("MCP tool %s failed unexpectedly", tool)
        result = _error_result("internal_error", f"unexpected server error (request id {request_id.get()})")
    return _counted(tool, started, result)


def _counted(tool: str, started: float, result: CallToolResult) -> CallToolResult:
    MCP_TOOL_CALLS.labels(tool, "error" if result.is_error else "ok").inc()
    MCP_TOOL_SECONDS.labels(tool).observe(time.perf_counter() - started)
    return result


class DbmetaMCPServer(MCPServer[Any]):
    """The SDK's server, with the tools' argument errors answered and counted like their other errors.

    The SDK validates a call's arguments against the tool's parameter model before the tool body (and
    :func:`_guard`) runs, and answers a refusal with pydantic's text. Here, for every tool, that refusal
    becomes the service's ``invalid_request`` JSON; the input schemas (tools/list) are the SDK's, unchanged.
    """

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        started = time.perf_counter()
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            # answered like every other tool error (the SDK's would be the text "Unknown tool: x"); not
            # counted: the metric's tool label takes only the tools that exist
            known = ", ".join(sorted(tool.name for tool in self._tool_manager.list_tools()))
            return _error_result("unknown_tool", f"Unknown tool {name!r}; tools: {known}")
        # an argument the tool does not take is refused, as the HTTP API's 422 refuses a field a route does not
        # take: a misspelt "profle" must not answer from the default profile (the SDK ignores it)
        declared = set((tool.parameters or {}).get("properties", {}))
        unknown = sorted(set(arguments or {}) - declared)
        if unknown:
            problems = [
                {"loc": [u], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
                for u in unknown
            ]
            log.info("MCP tool %s refused: invalid_request: %s", name, unknown)
            return _counted(name, started, _error_result("invalid_request", problems))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            # Only argument validation raises a ToolError caused by a ValidationError (the tool bodies
            # answer their own errors through _guard).
            if isinstance(exc, UnexpectedToolError) or not isinstance(exc.__cause__, ValidationError):
                raise
            return _counted(name, started, _invalid_arguments(name, exc.__cause__))

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        """The SDK's, with the client's mistakes (unknown prompt, missing or unknown argument) said as such.

        The SDK answers them with JSON-RPC code 0 and its exception's text, and logs a traceback: here they
        are invalid params whose message is ``"<error>: <detail>"``, logged at info.
        """
        prompt = self._prompt_manager.get_prompt(name)
        if prompt is None:
            known = ", ".join(sorted(p.name for p in self._prompt_manager.list_prompts()))
            raise _client_error("prompt", "unknown_prompt", f"Unknown prompt {name!r}; prompts: {known}")
        declared = [argument.name for argument in prompt.arguments or ()]
        given = set(arguments or {})
        problems = [
            f"missing argument {argument.name}"
            for argument in prompt.arguments or ()
            if argument.required and argument.name not in given
        ]
        unknown = sorted(given.difference(declared))
        if unknown:
            problems.append(
                f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                f"the arguments of {name}: {', '.join(declared)}"
            )
        if problems:
            raise _client_error("prompt", "invalid_request", "; ".join(problems))
        return await super().get_prompt(name, arguments, context)

    async def read_resource(self, uri: Any, context: Context[Any, Any] | None = None) -> Any:
        """The SDK's, with a URI no resource matches named in the ``"<error>: <detail>"`` form."""
        try:
            return await super().read_resource(uri, context)
        except ResourceNotFoundError as exc:
            if not str(exc).startswith("Unknown resource:"):  # the SDK's own; ours are in the service's form
                raise
            known = ", ".join(sorted(t.uri_template for t in self._resource_manager.list_templates()))
            raise ResourceNotFoundError(
                f"unknown_resource: no resource {str(uri)!r}; resources: {known}"
            ) from None

    async def run_stdio_async(self) -> None:
        """Serve over stdio, answering a line that is not one JSON-RPC message (the SDK drops it unanswered)."""
        async with _stdin_lines() as lines, stdio_server(stdin=lines) as (read_stream, write_stream):
            answers = _TrackedAnswers(write_stream)
            await self._lowlevel_server.run(
                _AnsweringMalformed(read_stream, answers),
                answers,
                self._lowlevel_server.create_initialization_options(),
            )


def _client_error(where: str, error: str, detail: str) -> MCPError:
    """A client's mistake (a request the server cannot serve as sent): JSON-RPC invalid params, logged at info."""
    log.info("MCP %s refused: %s: %s", where, error, detail)
    return MCPError(INVALID_PARAMS, f"{error}: {detail}", {"error": error, "detail": detail})


async def _described_params(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Params of the wrong shape: invalid params naming the fields and what is wrong, never the values sent.

    The SDK answers them with only "Invalid request parameters", which does not say what to fix.
    """
    try:
        return await call_next(ctx)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_context=False, include_input=False)
        said = "; ".join(
            f"{'.'.join(str(part) for part in p['loc']) or 'params'}: {p['msg']}" for p in problems[:5]
        )
        raise _client_error(ctx.method, "invalid_request", f"{ctx.method}: {said}") from None


NOT_JSON = "Parse error: the message is not valid JSON"
INVALID_ID = "Invalid Request: the id of a request must be a string or an integer"
# What the stdio reader hands the SDK in place of a request whose id is invalid: a line no JSON-RPC message
# matches, so it comes back as a ValidationError, answered (:class:`_AnsweringMalformed`) with INVALID_ID.
_INVALID_ID_MARK = "dbmeta_invalid_id"
_INVALID_ID_LINE = orjson.dumps({_INVALID_ID_MARK: True}).decode() + "\n"


def _malformed(exc: ValidationError) -> tuple[int, str]:
    """Why a message is not one JSON-RPC 2.0 message (as the SDK's parse of it failed), as JSON-RPC code and message.

    The one wording of these answers, over HTTP (:func:`_invalid_request`) and stdio (:class:`_AnsweringMalformed`).
    """
    problems = exc.errors(include_url=False, include_context=False, include_input=True)
    if any(
        isinstance(problem.get("input"), dict) and _INVALID_ID_MARK in problem["input"]
        for problem in problems
    ):
        return INVALID_REQUEST, INVALID_ID
    if any(problem["type"] == "json_invalid" for problem in problems):
        return PARSE_ERROR, NOT_JSON
    if problems and all(len(p["loc"]) <= 1 and isinstance(p.get("input"), list) for p in problems):
        return (
            INVALID_REQUEST,
            "Invalid Request: batches are not supported; send one JSON-RPC message at a time",
        )
    return (
        INVALID_REQUEST,
        'Invalid Request: not a JSON-RPC 2.0 message (an object with "jsonrpc": "2.0" and a "method", '
        'and an "id" for a request)',
    )


@asynccontextmanager
async def _stdin_lines() -> AsyncIterator[anyio.AsyncFile[str]]:
    """Standard input's lines as the SDK's stdio transport reads them, a request with an invalid id marked.

    The SDK reads such a request (``"id": 1.5``, ``null``, ``true``) as a notification and drops it, so the
    client would wait forever; the line is handed on as one that is no JSON-RPC message, and answered. The
    descriptor is claimed as the SDK claims it when it opens stdin itself (fd 0 then reads the null device).
    """
    buffer, release = _claim_fd(0, sys.stdin, "rb", _open_stdin_diversion)
    try:
        text = anyio.wrap_file(_UnownedTextWrapper(buffer, encoding="utf-8", errors="replace"))
        yield cast(anyio.AsyncFile[str], _IdCheckedLines(text))
    finally:
        if release is not None:
            release()


class _IdCheckedLines:
    """An async file's lines, each request whose id is neither a string nor an integer replaced by a mark."""

    def __init__(self, lines: anyio.AsyncFile[str]) -> None:
        self._lines = lines

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in self._lines:
            yield _INVALID_ID_LINE if _has_invalid_id(line) else line


#: How long a stdio server whose input has closed goes on answering the requests still in flight.
STDIO_DRAIN_SECONDS: Final = 300.0


class _TrackedAnswers:
    """The stdio transport's write stream, knowing which of the client's requests are still unanswered.

    A client may write its requests and close its end (``printf … | dbmeta mcp``): the SDK then ends the
    session and answers what is in flight with "Connection closed". The read side waits for
    :meth:`drained` before it reports the end of the input, so every request asked is answered.
    """

    def __init__(self, inner: WriteStream[SessionMessage]) -> None:
        self._inner = inner
        self._pending: set[str | int] = set()
        self._changed = anyio.Event()

    def asked(self, item: SessionMessage | Exception) -> None:
        """Note a request the client sent (a request it cancels gets no answer: it is not waited for)."""
        if not isinstance(item, SessionMessage):
            return
        message = item.message
        if isinstance(message, JSONRPCRequest):
            self._pending.add(message.id)
        elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            self._pending.discard((message.params or {}).get("requestId"))
            self._changed.set()

    async def drained(self) -> None:
        """Return once every request asked is answered (the caller bounds the wait)."""
        while self._pending:
            await self._changed.wait()
            self._changed = anyio.Event()

    async def send(self, item: SessionMessage, /) -> None:
        await self._inner.send(item)
        message = item.message
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id in self._pending:
            self._pending.discard(message.id)
            self._changed.set()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _TrackedAnswers:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _AnsweringMalformed:
    """The stdio transport's read stream, minus its unparsable lines, each answered with a JSON-RPC error.

    The SDK's stdio reader hands such a line on as an exception, which the server only logs at debug: the
    client would wait for an answer forever. JSON-RPC says: an error with a null id; the next lines are served.
    At the end of the input, what the client asked is answered first (:class:`_TrackedAnswers`).
    """

    def __init__(self, inner: ReadStream[SessionMessage | Exception], answers: _TrackedAnswers) -> None:
        self._inner = inner
        self._answers = answers

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        while True:
            try:
                item = await self._inner.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                with anyio.move_on_after(STDIO_DRAIN_SECONDS):
                    await self._answers.drained()
                raise
            self._answers.asked(item)
            if not isinstance(item, ValidationError):
                return item
            code, message = _malformed(item)
            log.info("MCP stdio: refused a line: %s", message)
            error = ErrorData(code=code, message=message, data={"error": "bad_request", "detail": message})
            await self._answers.send(SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=error)))

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _AnsweringMalformed:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _AnsweringMalformed:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _prompt_error(exc: DbmetaError) -> MCPError:
    """A domain error rendering a prompt: a JSON-RPC error naming it, as resources and tools name it."""
    detail = public_detail(exc)
    if exc.status_code >= 500:
        log.warning("MCP prompt: %s: %s", exc.code, detail)
    code = INVALID_PARAMS if exc.status_code < 500 else INTERNAL_ERROR
    return MCPError(code, f"{exc.code}: {detail}", {"error": exc.code, "detail": detail})


async def _read_resource(read: Callable[[], Awaitable[str]]) -> str:
    """A domain error reading a resource becomes the SDK's resource error (its message reaches the client)."""
    try:
        return await read()
    except DbmetaError as exc:
        error = ResourceNotFoundError if exc.status_code == 404 else ResourceError
        raise error(f"{exc.code}: {public_detail(exc)}") from None


def _shown(value: Any) -> str:
    """A value as an LLM reads it: no Python ``None``, numbers without noise."""
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _prompt_items_text(answer: dict[str, Any]) -> str:
    parts = [f"profile: {answer['profile']}, schema_version: {answer['schema_version']}"]
    for item in answer["prompt_items"]:
        parts.append(f"## {item['type']}\n{item['text'] or '(none)'}")
    return "\n\n".join(parts)


#: Plans up to this many characters are shown in the text; a longer one only in the structured content.
PLAN_TEXT_MAX = 4_000


def _preflight_text(answer: dict[str, Any]) -> str:
    if answer.get("ok"):
        head = (
            f"Preflight OK: estimated rows {_shown(answer.get('estimated_rows'))}, "
            f"estimated cost {_shown(answer.get('estimated_cost'))}"
        )
        if answer.get("plan_truncated"):
            head += " (plan truncated to the profile's max_plan_bytes)"
    elif answer.get("error_kind") == "busy":
        head = f"Preflight BUSY (not checked; try again shortly): {answer.get('error')}"
    else:
        head = f"Preflight FAILED ({answer.get('error_kind')}): {answer.get('error')}"
        if answer.get("position") is not None:
            head += f" (at character {answer['position']})"
    lines = [head]
    if answer.get("suggestion"):
        lines.append(f"Suggestion: {answer['suggestion']}")
    lines += [f"Warning: {warning}" for warning in answer.get("warnings") or ()]
    plan = answer.get("plan")
    if plan is not None:
        shown = plan if isinstance(plan, str) else orjson.dumps(plan).decode()
        if len(shown) <= PLAN_TEXT_MAX:
            lines.append(f"Plan: {shown}")
        else:
            lines.append(f"Plan: {len(shown)} characters, in the structured content")
    return "\n".join(lines)


def _search_text(answer: dict[str, Any]) -> str:
    lines = [f"Tables for the request, best first (profile {answer['profile']}):"]
    for i, t in enumerate(answer["tables"], 1):
        note = family_note(t)
        lines.append(f"{i}. {visible(t['name'])} (score {t['score']:.4f})" + (f" — {note}" if note else ""))
    if not answer["tables"]:
        lines.append("(no table matched)")
    if answer.get("degraded"):
        lines.append(f"Note: degraded search ({answer.get('reason') or 'keyword ranking only'})")
    return "\n".join(lines)


def _details_text(item: dict[str, Any]) -> str:
    unknown = item["metadata"].get("unknown_tables") or []
    text: str = item["text"] or "(no known table among those asked)"
    if unknown:
        text += "\n\nUnknown tables (not in the schema): " + visible(", ".join(unknown))
    return text


def _schemas_text(answer: dict[str, Any]) -> str:
    lines = [f"Schemas of profile {answer['profile']} ({answer['dialect']}):"]
    for schema in answer["schemas"]:
        name = visible(schema["name"]) if schema["name"] else "(no schema: bare table names)"
        lines.append(f"- {name}: {schema['tables']} tables, {schema['views']} views")
    return "\n".join(lines)


def _tables_text(answer: dict[str, Any]) -> str:
    more = f" (first {len(answer['tables'])} of {answer['total']})" if answer["truncated"] else ""
    lines = [f"{answer['total']} tables in profile {answer['profile']}{more}:"]
    if answer["detail_level"] == "full":
        return lines[0] + "\n\n" + (answer["text"] or "(none)")
    for table in answer["tables"]:
        if isinstance(table, str):
            lines.append(visible(table))
        else:
            # a comment on one line, as the schema text shows it
            about = f": {visible(' '.join(table['description'].split()))}" if table.get("description") else ""
            lines.append(f"- {visible(table['name'])} ({table['kind']}, {table['columns']} columns){about}")
    return "\n".join(lines)


def create_mcp_server(get_runtime: Callable[[], Runtime]) -> MCPServer:
    """Build the MCP server whose tools call the same domain functions as the HTTP API."""
    # MCPServer() calls logging.basicConfig with a rich handler on the root logger; logging is configured
    # once, by the app (configure_logging), so whatever the constructor adds to the root logger is undone.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server = DbmetaMCPServer(
        "dbmeta",
        title="dbmeta",
        version=__version__,
        instructions=(
            "Database context for writing SQL. Call prompt_items with the user's request for the relevant "
            "schema, examples, instructions and SQL dialect in one call (or search_tables for table names "
            "only); list_schemas / list_tables to browse; get_table_details for named tables; "
            "preflight_query to check a candidate SELECT (safety, validity, plan and cost) before running it."
        ),
    )
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    server.middleware.append(_described_params)

    @server.tool(title="Prompt items for a request", annotations=_READ_ONLY)
    async def prompt_items(
        user_request: UserRequest = None,
        profile: Profile = None,
        items: Items = None,
        schema_top_k: SchemaTopK = 10,
        examples_top_k: ExamplesTopK = 3,
        max_tokens: MaxTokens = None,
    ) -> Annotated[CallToolResult, PromptItemsResponse]:
        """Return the context for writing SQL for a request: relevant schema, query examples, instructions, SQL dialect."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            kinds: list[str] = list(items) if items is not None else list(ITEM_TYPES)
            answer = await get_prompt_items(
                runtime, rt, user_request, kinds, schema_top_k, examples_top_k, max_tokens
            )
            answer = _jsonable(answer)
            return _result(_prompt_items_text(answer), answer)

        return await _guard("prompt_items", call)

    @server.tool(title="Preflight a SQL query", annotations=_READ_ONLY)
    async def preflight_query(
        sql: Sql, profile: Profile = None
    ) -> Annotated[CallToolResult, PreflightResponse]:
        """Check one SQL query without running it: refused unless a single read-only SELECT; else EXPLAIN plan, estimated rows and cost, errors with did-you-mean hints."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            answer: dict[str, Any] = orjson.loads(await preflight(runtime.settings, runtime.cache, rt, sql))
            return _result(_preflight_text(answer), answer)

        return await _guard("preflight_query", call)

    @server.tool(title="Search relevant tables", annotations=_READ_ONLY)
    async def search_tables(
        query: Query, top_k: TopK = 10, profile: Profile = None
    ) -> Annotated[CallToolResult, TableSearchResponse]:
        """Return the tables a natural-language request needs, best first, with relevance scores."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            _, result = await search_runtime.search_tables(runtime, rt, query, top_k)
            answer: dict[str, Any] = result.answer(rt.name)
            answer = _jsonable(answer)
            return _result(_search_text(answer), answer)

        return await _guard("search_tables", call)

    @server.tool(title="Schema of named tables", annotations=_READ_ONLY)
    async def get_table_details(
        tables: Tables,
        profile: Profile = None,
        with_examples: WithExamples = False,
        max_tokens: MaxTokens = None,
    ) -> Annotated[CallToolResult, PromptItem]:
        """Return the schema (columns, types, keys, foreign keys, descriptions) of exactly the named tables; names not in the schema are listed as unknown."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            item = await get_schema_prompt_item(
                runtime.settings,
                runtime.cache,
                rt,
                tables=tables,
                with_examples=with_examples,
                max_tokens=prompt_budget(runtime.settings, max_tokens, False),
            )
            item = _jsonable(item)
            item["metadata"].setdefault("unknown_tables", [])
            return _result(_details_text(item), item)

        return await _guard("get_table_details", call)

    @server.tool(title="List schemas", annotations=_READ_ONLY)
    async def list_schemas(profile: Profile = None) -> Annotated[CallToolResult, SchemaList]:
        """List the database's schemas with how many tables and views each holds."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            answer = _jsonable(await browse.list_schemas(runtime, runtime.profile(profile)))
            return _result(_schemas_text(answer), answer)

        return await _guard("list_schemas", call)

    @server.tool(title="List tables", annotations=_READ_ONLY)
    async def list_tables(
        schema: SchemaName = None,
        detail_level: Detail = "names",
        limit: Limit = 200,
        profile: Profile = None,
    ) -> Annotated[CallToolResult, TableList]:
        """List the tables of a schema (or all), by name: names only, a summary (kind, column count, description) or their full schema text."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            answer = _jsonable(await browse.list_tables(runtime, rt, schema, detail_level, limit))
            return _result(_tables_text(answer), answer)

        return await _guard("list_tables", call)

    @server.resource(
        "dbmeta://{profile}/schema",
        title="Full schema of a profile",
        description="The schema text of every table of the profile (what db_struct shows without a request)",
        mime_type="text/plain",
    )
    async def schema_resource(profile: str) -> str:
        async def read() -> str:
            runtime = get_runtime()
            item = await get_schema_prompt_item(runtime.settings, runtime.cache, runtime.profile(profile))
            text: str = item["text"]
            return text

        return await _read_resource(read)

    @server.resource(
        "dbmeta://{profile}/tables/{name}",
        title="Schema of one table",
        description="Columns, types, keys, foreign keys and descriptions of one table (schema.table)",
        mime_type="text/plain",
    )
    async def table_resource(profile: str, name: str) -> str:
        async def read() -> str:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            item = await get_schema_prompt_item(runtime.settings, runtime.cache, rt, tables=[name])
            if item["metadata"].get("unknown_tables"):
                raise ResourceNotFoundError(f"unknown_table: no table {name!r} in profile {rt.name!r}")
            text: str = item["text"]
            return text

        return await _read_resource(read)

    @server.prompt(
        title="Write SQL for a request",
        description="The context for writing one SQL query for a request: schema, examples, instructions, dialect",
    )
    async def write_sql(user_request: str, profile: str | None = None) -> str:
        runtime = get_runtime()
        try:
            rt = runtime.profile(profile)
            answer = await get_prompt_items(runtime, rt, user_request, list(ITEM_TYPES), 10, 3)
        except DbmetaError as exc:
            # The SDK hides any other exception behind "Error rendering prompt"; an MCPError goes through.
            raise _prompt_error(exc) from None
        context = "\n\n".join(
            f"## {item['type']}\n{item['text'] or '(none)'}" for item in answer["prompt_items"]
        )
        return (
            f"Write one read-only SQL query ({rt.dialect}) that answers the request below, using only the "
            "tables and columns of the schema given here and following the instructions. Check it with "
            "the preflight_query tool before giving it; fix it while the preflight is not ok.\n\n"
            f"Request: {user_request}\n\n{context}"
        )

    return server


class McpHttpEndpoint:
    """The ASGI endpoint of an MCP server over streamable HTTP; serves only while :meth:`run` is entered."""

    def __init__(self, server: MCPServer, *, max_body_bytes: int) -> None:
        self.server = server
        self.max_body_bytes = max_body_bytes
        self._manager: StreamableHTTPSessionManager | None = None
        self._security = TransportSecuritySettings()

    @asynccontextmanager
    async def run(self, security: TransportSecuritySettings) -> AsyncIterator[None]:
        """Run a fresh session manager for the life of the app (enter it in the lifespan)."""
        security = _case_folded(security)
        self._security = security
        # streamable_http_app() is what creates the session manager; its Starlette app is not needed, since
        # this endpoint is routed at exactly /mcp and hands requests to the manager itself.
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=self.max_body_bytes,
            transport_security=security,
        )
        manager = self.server.session_manager
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self._manager
        if manager is None:
            response = JSONResponse(
                {"error": "unavailable", "detail": "the MCP endpoint is not running"}, status_code=503
            )
            await response(scope, receive, send)
            return
        scope = _host_and_origin_folded(scope)  # the SDK checks them again, so its scope is folded too
        refused = await refuse_foreign(self._security, scope)
        if refused is not None:
            await refused(scope, receive, send)
            return
        if scope.get("method") == "GET":
            # A GET opens a stream of server-initiated messages; a stateless server sends none, and the
            # SDK would hold the request open forever. The transport's answer for that is a 405.
            response = JSONResponse(
                {
                    "error": "method_not_allowed",
                    "detail": "GET /mcp: this server sends no server-initiated messages; POST JSON-RPC requests",
                },
                status_code=405,
                headers={"Allow": "POST"},
            )
            await response(scope, receive, send)
            return
        if scope.get("method") == "POST":
            if not _sent_as_json(scope):
                # The SDK's answer is a plain-text 400; the service's, on every route, is a 415 (here as
                # JSON-RPC, like the transport's other errors: the edge adds error, detail and request_id).
                response = _invalid_request(
                    415, "the request body must be JSON-RPC, sent with Content-Type: application/json"
                )
                await response(scope, receive, send)
                return
            messages, body, too_large = await _read_body(receive, self.max_body_bytes)
            if too_large:
                # over the limit while streamed (a declared length over it is the edge's 413): as the edge
                # says it, JSON-RPC on /mcp (the SDK's would be plain text); the edge drops the rest
                answer: JSONResponse | None = _invalid_request(
                    413, f"request body is over MAX_BODY_BYTES ({self.max_body_bytes} bytes)"
                )
            elif body is not None and check_accept_headers(Request(scope))[0]:
                # (a client that does not accept JSON gets the SDK's 406 first, as before)
                answer = _refuse_message(body)
            else:
                answer = None
            if answer is not None:
                await answer(scope, receive, send)
                return
            receive = _replay(messages, receive)
        await manager.handle_request(scope, receive, send)


def _invalid_request(status: int, message: str, code: int = INVALID_REQUEST) -> JSONResponse:
    """A JSON-RPC error answered by the endpoint itself (no id: the request has none usable).

    The edge (``api/middleware.py``) adds ``error``, ``detail`` and ``request_id`` as ``error.data``.
    """
    return JSONResponse(
        {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}},
        status_code=status,
    )


def _refuse_message(body: bytes) -> JSONResponse | None:
    """The answer to a body that is not one JSON-RPC 2.0 message, else None (the SDK serves it).

    The SDK answers such a body with -32602 and pydantic's dump of every member of its message union (4 KB);
    JSON-RPC says -32700 (not JSON) or -32600 (not a request object), and batches are not served (the
    2025-06-18 protocol removed them). A message whose id is neither a string nor an integer (1.5, 1e400,
    null) the SDK takes for a notification: 202 and no answer ever, so the client would wait.
    """
    if _has_invalid_id(body):
        return _invalid_request(400, INVALID_ID)
    try:
        message = pydantic_core.from_json(body)  # as the transport parses it
    except ValueError:
        code, text = PARSE_ERROR, NOT_JSON
    else:
        try:
            jsonrpc_message_adapter.validate_python(message, by_name=False)
            return None
        except ValidationError as exc:
            code, text = _malformed(exc)
    log.info("MCP request refused: %s", text)
    return _invalid_request(400, text, code)


def _case_folded(security: TransportSecuritySettings) -> TransportSecuritySettings:
    """The allowed Host and Origin values in lower case: host names and schemes are case-insensitive.

    The SDK compares them as strings; with these and :func:`_host_and_origin_folded`, ``LOCALHOST:8000``
    is ``localhost:8000``.
    """
    return security.model_copy(
        update={
            "allowed_hosts": [host.lower() for host in security.allowed_hosts],
            "allowed_origins": [origin.lower() for origin in security.allowed_origins],
        }
    )


def _host_and_origin_folded(scope: Scope) -> Scope:
    """The request with its Host and Origin headers in lower case (ASCII), for the DNS-rebinding check."""
    headers = scope["headers"]
    if not any(name in (b"host", b"origin") and value != value.lower() for name, value in headers):
        return scope
    folded = [(name, value.lower() if name in (b"host", b"origin") else value) for name, value in headers]
    return {**scope, "headers": folded}


def _sent_as_json(scope: Scope) -> bool:
    """Whether a request's Content-Type is JSON by the SDK's own rule (it starts with ``application/json``)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: str = value.decode("latin-1")
            return media.strip().lower().startswith("application/json")
    return False


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bytes | None, bool]:
    """Read a request's body (kept to be replayed): its messages, the body (None when over limit or cut
    short) and whether it is over limit (counted here, or by the app's own cap, which raises a 413)."""
    messages: list[Message] = []
    size = 0
    while True:
        try:
            message = await receive()
        except HTTPException as exc:
            if exc.status_code != 413:
                raise
            return messages, None, True
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None, False
        size += len(message.get("body", b""))
        if size > limit:
            return messages, None, True  # answered 413 (the edge reads and drops the rest)
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages), False


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = deque(messages)

    async def replay() -> Message:
        return pending.popleft() if pending else await receive()

    return replay


def _has_invalid_id(body: bytes | str) -> bool:
    """A request (it names a method) with an ``id`` member that is not a string or an integer."""
    try:
        message = pydantic_core.from_json(body)  # as the transport parses it (1e400 is inf, not an error)
    except ValueError:
        return False
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return False
    ident = message["id"]
    return isinstance(ident, bool) or not isinstance(ident, str | int)


def mount_mcp(app: FastAPI, *, max_body_bytes: int) -> McpHttpEndpoint:
    """Serve the MCP tools at exactly /mcp (and /mcp/) of app; enter the returned endpoint's run() in the lifespan."""
    endpoint = McpHttpEndpoint(
        create_mcp_server(lambda: cast(Runtime, app.state.runtime)),
        max_body_bytes=max_body_bytes,
    )
    # Plain routes (an ASGI endpoint, not in the OpenAPI document) rather than a Mount: a Mount at /mcp
    # only matches /mcp/…, so /mcp itself would be a 307 redirect.
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint, name="mcp"))
    app.router.routes.append(Route(MCP_PATH + "/", endpoint=endpoint, name="mcp_slash"))
    return endpoint
