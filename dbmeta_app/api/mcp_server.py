"""The service's capabilities as MCP tools, served over streamable HTTP at ``/mcp`` in the same app.

Four tools mirror the HTTP API (same domain calls, same answers):

- ``prompt_items``       ≙ ``POST /v1/prompt-items``
- ``preflight_query``    ≙ ``POST /v1/preflight``
- ``search_tables``      ≙ ``POST /v1/tables/search``
- ``get_table_details``  ≙ ``POST /v1/prompt-items/schema`` with ``tables``

Each answer carries the JSON object of the HTTP API as ``structuredContent`` and a text rendering an LLM
reads directly. Expected failures (unknown profile, database down, invalid arguments) are tool results with
``isError: true`` and a message naming the problem, never protocol errors or crashes.

Transport choices:

- Stateless and JSON responses: every tool is one request → one answer, and the deployment scales
  horizontally (HPA) behind a plain Service, so no request may depend on a session held by one replica.
- ``/mcp`` and ``/mcp/`` are both exact routes (no 307 slash redirect a client might refuse to follow).
- Host/Origin (DNS-rebinding) checks: off unless ``allowed_hosts`` is given. The SDK turns them on by
  default with a localhost-only allow list, which answers 421 to every in-cluster or proxied ``Host``
  (``dbmeta:8000``, an ingress name, ``testserver``) while the REST routes beside it check no host at all,
  so it would break real clients without protecting anything the rest of the API does not expose.
- The session manager lives in the app's lifespan (:meth:`McpHttpEndpoint.run`); a new one is made for
  each lifespan, as the SDK's can only be run once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, cast

import orjson
from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dbmeta_app import __version__
from dbmeta_app.api.models import ItemType
from dbmeta_app.errors import DbmetaError
from dbmeta_app.items.bundle import ITEM_TYPES, get_prompt_items
from dbmeta_app.items.db_struct import get_schema_prompt_item
from dbmeta_app.items.preflight import preflight
from dbmeta_app.logging_setup import request_id
from dbmeta_app.runtime import Runtime
from dbmeta_app.search import runtime as search_runtime

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
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

_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _jsonable(answer: dict[str, Any]) -> dict[str, Any]:
    # The same encoding the HTTP API uses, so both interfaces answer exactly the same values.
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(answer))
    return decoded


def _result(text: str, structured: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _error(tool: str, exc: DbmetaError) -> CallToolResult:
    if exc.status_code >= 500:
        log.warning("MCP tool %s: %s: %s", tool, exc.code, exc.detail)
    else:
        log.info("MCP tool %s refused: %s: %s", tool, exc.code, exc.detail)
    return CallToolResult(
        content=[TextContent(type="text", text=f"{exc.code}: {exc.detail}")],
        structured_content={"error": exc.code, "detail": exc.detail},
        is_error=True,
    )


async def _guard(tool: str, call: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """Run a tool body; a domain error becomes an isError result, and so does anything unexpected.

    An unexpected error is answered like the HTTP API's 500 (``internal_error``), logged once with its
    traceback and the request id, which the answer names so that the log line can be found.
    """
    try:
        return await call()
    except DbmetaError as exc:
        return _error(tool, exc)
    except Exception:
        log.exception("MCP tool %s failed unexpectedly", tool)
        detail = f"unexpected server error (request id {request_id.get()})"
        return CallToolResult(
            content=[TextContent(type="text", text=f"internal_error: {detail}")],
            structured_content={"error": "internal_error", "detail": detail},
            is_error=True,
        )


def _prompt_items_text(answer: dict[str, Any]) -> str:
    parts = [f"profile: {answer['profile']}, schema_version: {answer['schema_version']}"]
    for item in answer["prompt_items"]:
        parts.append(f"## {item['type']}\n{item['text'] or '(none)'}")
    return "\n\n".join(parts)


def _preflight_text(answer: dict[str, Any]) -> str:
    if answer.get("ok"):
        head = (
            f"Preflight OK: estimated_rows={answer.get('estimated_rows')}, "
            f"estimated_cost={answer.get('estimated_cost')}"
        )
        if answer.get("plan_truncated"):
            head += " (plan truncated to the profile's max_plan_bytes)"
    elif answer.get("error_kind") == "busy":
        head = f"Preflight BUSY (not checked; try again shortly): {answer.get('error')}"
    else:
        head = f"Preflight FAILED ({answer.get('error_kind')}): {answer.get('error')}"
    if answer.get("suggestion"):
        head += f"\nSuggestion: {answer['suggestion']}"
    for warning in answer.get("warnings") or ():
        head += f"\nWarning: {warning}"
    return head + "\n\n" + orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode()


def _search_text(answer: dict[str, Any]) -> str:
    lines = [f"Tables for the request, best first (profile {answer['profile']}):"]
    lines += [f"{i}. {t['name']} (score {t['score']:.4f})" for i, t in enumerate(answer["tables"], 1)]
    if not answer["tables"]:
        lines.append("(no table matched)")
    if answer.get("degraded"):
        lines.append(f"Note: degraded search ({answer.get('reason') or 'keyword ranking only'})")
    return "\n".join(lines)


def _details_text(item: dict[str, Any]) -> str:
    unknown = item["metadata"].get("unknown_tables") or []
    text: str = item["text"] or "(no known table among those asked)"
    if unknown:
        text += "\n\nUnknown tables (not in the schema): " + ", ".join(unknown)
    return text


def create_mcp_server(get_runtime: Callable[[], Runtime]) -> MCPServer:
    """Build the MCP server whose tools call the same domain functions as the HTTP API."""
    # MCPServer() calls logging.basicConfig with a rich handler on the root logger; logging is configured
    # once, by the app (configure_logging), so whatever the constructor adds to the root logger is undone.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server: MCPServer = MCPServer(
        "dbmeta",
        title="dbmeta",
        version=__version__,
        instructions=(
            "Database context for writing SQL: call search_tables or prompt_items with the user's request "
            "to get the relevant schema, examples and instructions; get_table_details for named tables; "
            "preflight_query to check a candidate SELECT (safety, validity, plan and cost) before running it."
        ),
    )
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)

    @server.tool(title="Prompt items for a request", annotations=_READ_ONLY)
    async def prompt_items(
        user_request: UserRequest = None,
        profile: Profile = None,
        items: Items = None,
        schema_top_k: SchemaTopK = 10,
        examples_top_k: ExamplesTopK = 3,
    ) -> CallToolResult:
        """Return the context for writing SQL for a request: relevant schema, query examples, instructions, SQL dialect."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            kinds: list[str] = list(items) if items is not None else list(ITEM_TYPES)
            answer = await get_prompt_items(runtime, rt, user_request, kinds, schema_top_k, examples_top_k)
            answer = _jsonable(answer)
            return _result(_prompt_items_text(answer), answer)

        return await _guard("prompt_items", call)

    @server.tool(title="Preflight a SQL query", annotations=_READ_ONLY)
    async def preflight_query(sql: Sql, profile: Profile = None) -> CallToolResult:
        """Check one SQL query without running it: refused unless a single read-only SELECT; else EXPLAIN plan, estimated rows and cost, errors with did-you-mean hints."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            answer: dict[str, Any] = orjson.loads(await preflight(runtime.settings, runtime.cache, rt, sql))
            return _result(_preflight_text(answer), answer)

        return await _guard("preflight_query", call)

    @server.tool(title="Search relevant tables", annotations=_READ_ONLY)
    async def search_tables(query: Query, top_k: TopK = 10, profile: Profile = None) -> CallToolResult:
        """Return the tables a natural-language request needs, best first, with relevance scores."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            _, result = await search_runtime.search_tables(runtime, rt, query, top_k)
            answer: dict[str, Any] = {
                "profile": rt.name,
                "tables": [h.to_json() for h in result.hits],
                "degraded": result.degraded,
            }
            if result.reason:
                answer["reason"] = result.reason
            answer = _jsonable(answer)
            return _result(_search_text(answer), answer)

        return await _guard("search_tables", call)

    @server.tool(title="Schema of named tables", annotations=_READ_ONLY)
    async def get_table_details(
        tables: Tables, profile: Profile = None, with_examples: WithExamples = False
    ) -> CallToolResult:
        """Return the schema (columns, types, keys, foreign keys, descriptions) of exactly the named tables; names not in the schema are listed as unknown."""

        async def call() -> CallToolResult:
            runtime = get_runtime()
            rt = runtime.profile(profile)
            item = await get_schema_prompt_item(
                runtime.settings, runtime.cache, rt, tables=tables, with_examples=with_examples
            )
            item = _jsonable(item)
            item["metadata"].setdefault("unknown_tables", [])
            return _result(_details_text(item), item)

        return await _guard("get_table_details", call)

    return server


class McpHttpEndpoint:
    """The ASGI endpoint of an MCP server over streamable HTTP; serves only while :meth:`run` is entered."""

    def __init__(
        self, server: MCPServer, *, max_body_bytes: int, allowed_hosts: Sequence[str] | None = None
    ) -> None:
        self.server = server
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = list(allowed_hosts or ())
        self._manager: StreamableHTTPSessionManager | None = None

    def transport_security(self) -> TransportSecuritySettings:
        """Host/Origin checks: on with the given allow list, else off (see the module docstring)."""
        if not self.allowed_hosts:
            return TransportSecuritySettings(enable_dns_rebinding_protection=False)
        origins = [f"{scheme}://{host}" for host in self.allowed_hosts for scheme in ("http", "https")]
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=self.allowed_hosts, allowed_origins=origins
        )

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Run a fresh session manager for the life of the app (enter it in the lifespan)."""
        # streamable_http_app() is what creates the session manager; its Starlette app is not needed, since
        # this endpoint is routed at exactly /mcp and hands requests to the manager itself.
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=self.max_body_bytes,
            transport_security=self.transport_security(),
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
        await manager.handle_request(scope, receive, send)


def mount_mcp(
    app: FastAPI, *, max_body_bytes: int, allowed_hosts: Sequence[str] | None = None
) -> McpHttpEndpoint:
    """Serve the MCP tools at exactly /mcp (and /mcp/) of app; enter the returned endpoint's run() in the lifespan."""
    endpoint = McpHttpEndpoint(
        create_mcp_server(lambda: cast(Runtime, app.state.runtime)),
        max_body_bytes=max_body_bytes,
        allowed_hosts=allowed_hosts,
    )
    # Plain routes (an ASGI endpoint, not in the OpenAPI document) rather than a Mount: a Mount at /mcp
    # only matches /mcp/…, so /mcp itself would be a 307 redirect.
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint, name="mcp"))
    app.router.routes.append(Route(MCP_PATH + "/", endpoint=endpoint, name="mcp_slash"))
    return endpoint
